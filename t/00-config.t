# Directive parsing: accepted forms in every context, and invalid values that
# must stop nginx with a message naming the directive and the value.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: all directives at http, server and location level
--- http_config
    websockify_buffer_size 32k;
    websockify_connect_timeout 5s;
    websockify_read_timeout 1m;
    websockify_send_timeout 30s;
--- config
    websockify_buffer_size 16k;
    websockify_connect_timeout 3s;
    websockify_read_timeout 10s;
    websockify_send_timeout 10s;
    location /ws {
        websockify_pass 127.0.0.1:5901;
        websockify_buffer_size 65543;
        websockify_connect_timeout 1500ms;
        websockify_read_timeout 2h;
        websockify_send_timeout 45;
    }
--- no_error_log
[emerg]
[error]



=== TEST 2: websockify_pass address forms: host:port, host, [::1]:port, unix:, variables
--- http_config
    map $arg_t $ws_target {
        default 127.0.0.1:5902;
        b       unix:/tmp/nonexistent.sock;
    }
--- config
    location /a { websockify_pass 127.0.0.1:5900; }
    location /b { websockify_pass localhost; }
    location /c { websockify_pass localhost:5905; }
    location /d { websockify_pass [::1]:5900; }
    location /e { websockify_pass unix:$TEST_NGINX_WS_TMP/vnc.sock; }
    location /f { websockify_pass $ws_target; }
    location /g { set $h 127.0.0.1; websockify_pass $h:5903; }
    location /h { websockify_pass 127.0.0.1; }
--- no_error_log
[emerg]



=== TEST 3: websockify_buffer_size: invalid size
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_buffer_size 12abc; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_buffer_size.*12abc|12abc.*websockify_buffer_size)/



=== TEST 4: websockify_buffer_size: zero
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_buffer_size 0; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_buffer_size)/



=== TEST 5: websockify_connect_timeout: invalid time
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_connect_timeout forever; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_connect_timeout.*forever|forever.*websockify_connect_timeout)/



=== TEST 6: websockify_read_timeout: invalid time
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_read_timeout 10xs; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_read_timeout.*10xs|10xs.*websockify_read_timeout)/



=== TEST 7: websockify_send_timeout: invalid time
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_send_timeout -5s; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_send_timeout.*-5s|-5s.*websockify_send_timeout)/



=== TEST 8: websockify_pass: invalid port
--- config
    location /ws { websockify_pass 127.0.0.1:notaport; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_pass.*127\.0\.0\.1:notaport|127\.0\.0\.1:notaport.*websockify_pass)/



=== TEST 9: websockify_pass: port out of range
--- config
    location /ws { websockify_pass 127.0.0.1:70000; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_pass.*70000|70000.*websockify_pass)/



=== TEST 10: websockify_pass: empty unix path
--- config
    location /ws { websockify_pass unix:; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:websockify_pass.*unix:|unix:.*websockify_pass)/



=== TEST 11: websockify_pass: no argument
--- config
    location /ws { websockify_pass; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:invalid number of arguments in "websockify_pass")/



=== TEST 12: websockify_pass: too many arguments
--- config
    location /ws { websockify_pass 127.0.0.1:1 127.0.0.1:2; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:invalid number of arguments in "websockify_pass")/



=== TEST 13: websockify_pass is not allowed at server level
--- config
    websockify_pass 127.0.0.1:5900;
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:"websockify_pass" directive is not allowed here)/



=== TEST 14: websockify_pass twice in one location
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_pass 127.0.0.1:5901; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:"websockify_pass" directive is duplicate)/



=== TEST 15: unknown host name fails at startup, naming it
--- config
    location /ws { websockify_pass no-such-host.invalid:5900; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:no-such-host\.invalid)/
