# Directive parsing: accepted forms in every context, and invalid values that
# must stop nginx with a message naming the directive and the value.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

# Legal configurations that cannot do what they say draw an `nginx -t` warning.
package WsTest::Run {
    # `nginx -t` on the block's configuration: exit status, and each [warn] line
    # reduced to "message @ line".
    sub nginx_t {
        my $out = `$Test::Nginx::Util::NginxBinary -p $Test::Nginx::Util::ServRoot/ -c $Test::Nginx::Util::ConfFile -t 2>&1`;
        my @warn = map { m{\[warn\] (?:\d+#\d+: )?(.*) in \Q$Test::Nginx::Util::ConfFile\E:(\d+)$} ? "$1 \@ $2" : "$_ \@ ?" }
            grep { /\[warn\]/ && /websockify/ } split /\n/, $out;
        return ($? >> 8, $out, @warn);
    }

    # The line of the block's nginx.conf that holds $text.
    sub conf_line {
        my $text = shift;
        my @lines = split /\n/, WsTest::slurp($Test::Nginx::Util::ConfFile);
        for my $i (0 .. $#lines) {
            return $i + 1 if index($lines[$i], $text) >= 0;
        }
        die "\"$text\" is not in nginx.conf\n";
    }
}
package main;

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



=== TEST 16: warning: websockify_ping_interval not below websockify_read_timeout
--- http_config
    websockify_read_timeout 20s;
--- config
    location /default-ping { websockify_pass 127.0.0.1:5900; }
    location /equal { websockify_pass 127.0.0.1:5900; websockify_ping_interval 20s; }
    location /ms { websockify_pass 127.0.0.1:5900; websockify_read_timeout 1500ms; websockify_ping_interval 1500ms; }
    location /below { websockify_pass 127.0.0.1:5900; websockify_ping_interval 10s; }
    location /off { websockify_pass 127.0.0.1:5900; websockify_ping_interval off; }
    location /longer { websockify_pass 127.0.0.1:5900; websockify_read_timeout 1m; }
    location /in-if { websockify_pass 127.0.0.1:5900; websockify_read_timeout 5s; if ($arg_x) { return 204; } }
    location /no-pass { websockify_read_timeout 1s; }
--- ws_test
my ($rc, $out, @warn) = nginx_t();
is $rc, 0, "$T: the configuration is legal";
my $msg = 'websockify_ping_interval %s is not below websockify_read_timeout %s: '
    . 'an idle session ends before its first heartbeat ping @ %d';
is_deeply [sort @warn], [sort
    sprintf($msg, '30s', '20s', conf_line('location /default-ping ')),
    sprintf($msg, '20s', '20s', conf_line('location /equal ')),
    sprintf($msg, '1500ms', '1500ms', conf_line('location /ms ')),
    sprintf($msg, '30s', '5s', conf_line('location /in-if ')),
], "$T: one warning for each such location, at its websockify_pass" or diag $out;



=== TEST 17: warning: websockify_allow where the target has no variables
--- http_config
    websockify_allow 10.0.0.0/8;
--- config
    websockify_allow 127.0.0.1;
    location /static-inherited { websockify_pass 127.0.0.1:5900; }
    location /static-own { websockify_pass 127.0.0.1:5900; websockify_allow 127.0.0.4; }
    location /var-own { set $a 127.0.0.1; websockify_pass $a; websockify_allow 127.0.0.5; }
    location /used-below {
        websockify_pass 127.0.0.1:5900;
        websockify_allow 127.0.0.6;
        location /used-below/a { location /used-below/a/var { set $a 127.0.0.6; websockify_pass $a; } }
    }
    location /replaced-below {
        websockify_pass 127.0.0.1:5900;
        websockify_allow 127.0.0.7;
        location /replaced-below/var { set $a 127.0.0.8; websockify_pass $a; websockify_allow 127.0.0.8; }
    }
--- ws_test
my ($rc, $out, @warn) = nginx_t();
is $rc, 0, "$T: the configuration is legal";
my $msg = 'websockify_allow is never used here: websockify_pass has no variables, '
    . 'its target is trusted @ %d';
is_deeply [sort @warn], [sort
    sprintf($msg, conf_line('websockify_allow 127.0.0.4;')),
    sprintf($msg, conf_line('websockify_allow 127.0.0.7;')),
], "$T: only where no request can use the rules, at the websockify_allow" or diag $out;



=== TEST 18: warning: a variable websockify_pass without any websockify_allow rule
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_allow 127.0.0.1;
        location /server-rule { set $a 127.0.0.1; websockify_pass $a; }
    }
--- config
    location /none { set $a 127.0.0.1; websockify_pass $a; }
    location /in-if { set $a 127.0.0.1; websockify_pass $a; if ($arg_x) { return 204; } }
    location /own { set $a 127.0.0.1; websockify_pass $a; websockify_allow 127.0.0.1; }
    location /static { websockify_pass 127.0.0.1:5900; }
--- ws_test
my ($rc, $out, @warn) = nginx_t();
is $rc, 0, "$T: the configuration is legal";
my $msg = 'websockify_pass has variables but no websockify_allow rule applies: '
    . 'every request will be refused @ %d';
is_deeply [sort @warn], [sort
    sprintf($msg, conf_line('location /none ')),
    sprintf($msg, conf_line('location /in-if ')),
], "$T: one warning for each such location, at its websockify_pass" or diag $out;
my $c = http_raw(ws_request(path => '/none'));
is $c->{status}, 403, "$T: and indeed the request is refused";



=== TEST 19: the default websockify_read_timeout is 60s (the heartbeat warning shows the value in effect)
--- config
    location /at-default { websockify_pass 127.0.0.1:5900; websockify_ping_interval 60s; }
    location /below { websockify_pass 127.0.0.1:5900; websockify_ping_interval 59s; }
--- ws_test
my ($rc, $out, @warn) = nginx_t();
is $rc, 0, "$T: the configuration is legal";
is_deeply \@warn, [
    'websockify_ping_interval 60s is not below websockify_read_timeout 60s: '
    . 'an idle session ends before its first heartbeat ping @ ' . conf_line('location /at-default '),
], "$T: 60s is not below the default, 59s is" or diag $out;



=== TEST 20: websockify_zone twice
--- http_config
    websockify_zone a 1m;
    websockify_zone b 1m;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:"websockify_zone" directive is duplicate)/



=== TEST 21: websockify_status twice in one location
--- http_config
    websockify_zone a 1m;
--- config
    location /st { websockify_status zone=a; websockify_status zone=a; }
--- must_die
--- error_log eval
qr/\[emerg\] .*(?:"websockify_status" directive is duplicate)/
