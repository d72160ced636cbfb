# Behaviour documented in the README beyond the original brief: Origin checks,
# upstream groups, base64-mode errors, close-code validation, close codes for
# idle and send timeouts.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: websockify_allow_origin: listed origin and no Origin pass, others get 403
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_allow_origin https://console.example.com same;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = ws_connect(headers => { Origin => 'https://console.example.com' });
is $c->{status}, 101, "$T: listed origin";
$c->close;
$c = ws_connect();
is $c->{status}, 101, "$T: no Origin (not a browser)";
$c->close;
my $port = server_port_client();
$c = ws_connect(host => "localhost:$port", headers => { Origin => "http://localhost:$port" });
is $c->{status}, 101, "$T: same origin";
$c->close;
ok $t->wait_connections(3, 3), "$T: three target connections";
$c = http_raw(ws_request(headers => { Origin => 'https://evil.example' }));
is $c->{status}, 403, "$T: foreign origin refused";
$c = http_raw(ws_request(headers => { Origin => 'https://console.example.com.evil.example' }));
is $c->{status}, 403, "$T: suffix trick refused";
sleep 0.3;
is $t->connections, 3, "$T: refused handshakes never reach the target";



=== TEST 2: upstream group: a refusing server is skipped for the next one
--- http_config
    upstream vnc_pool {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /ws { websockify_pass vnc_pool; }
--- ws_test
my $port2 = rand_port(2);   # nobody listens there
my $t = mock_target(port => rand_port(1), banner => "pool\n");
for my $i (1 .. 4) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status ($i)";
    is $c->read_data(5, 5), "pool\n", "$T: reached the live server ($i)";
    $c->close;
}



=== TEST 3: base64 mode: invalid base64 -> close 1007
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect(protocol => 'base64');
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 1, payload => '!!not base64!!'));
close_ok($c, 1007, 'invalid base64', 3);
is $t->data, '', "$T: nothing relayed";
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1007: client sent invalid base64')



=== TEST 4: base64 mode: binary frame -> close 1003
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect(protocol => 'base64');
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 2, payload => 'raw'));
close_ok($c, 1003, 'binary frame in base64 mode', 3);
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1003: client sent a binary frame in base64 mode')



=== TEST 5: invalid close codes from the client -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $code (999, 1005, 1006, 1015, 2999) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status";
    $c->send(ws_close_frame($code));
    close_ok($c, 1002, "close code $code", 3);
}
my $c = ws_connect();
$c->send(ws_frame(opcode => 8, payload => "\x03"));
close_ok($c, 1002, '1-byte close payload', 3);
is error_log_count(log_line(info =>
    'websockify: closing with 1002: client close frame has an invalid status code')), 6,
    "$T: one info line per session";



=== TEST 6: invalid UTF-8 in a close reason -> close 1007
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_close_frame(1000, "bad \xff\xfe utf8"));
close_ok($c, 1007, 'close reason not UTF-8', 3);



=== TEST 7: idle session (no byte either way) -> close 1001
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
close_ok($c, 1001, 'idle', 4);
--- error_log eval
WsTest::log_line(info =>
    'websockify: session timed out after 1000 ms without data, closing with 1001')



=== TEST 8: client activity alone keeps an idle target's session open
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 2s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
for my $i (1 .. 8) {
    sleep 0.5;
    $c->send(ws_frame(payload => "k$i"));
}
is $t->wait_data(16, 2), 'k1k2k3k4k5k6k7k8', "$T: target got the keystrokes";
ok !$c->{eof} && !$c->read_frame(0.1), "$T: no close after 4 s of client-only activity (2x the timeout)";



=== TEST 9: send timeout towards the target -> close 1011
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_send_timeout 1s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), read_delay => 60);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $chunk = ws_frame(payload => prng_bytes('stuck', 1 << 20));
eval { $c->send($chunk) for 1 .. 16; 1 } or note "client write stopped: $@";
close_ok($c, 1011, 'send timeout towards the target', 8);
--- error_log eval
WsTest::log_line(error => 'websockify: sending to the target timed out')



=== TEST 10: websockify_buffer_size below 256 stops nginx with the exact message
--- config
    location /ws { websockify_pass 127.0.0.1:5901; websockify_buffer_size 255; }
--- must_die
--- error_log eval
qr/\[emerg\] \d+#\d+: invalid value "255" in "websockify_buffer_size" directive, it must be a size from 256 to 16m in \S+:\d+$/



=== TEST 11: websockify_buffer_size above 16m stops nginx with the exact message
--- config
    location /ws { websockify_pass 127.0.0.1:5901; websockify_buffer_size 16777217; }
--- must_die
--- error_log eval
qr/\[emerg\] \d+#\d+: invalid value "16777217" in "websockify_buffer_size" directive, it must be a size from 256 to 16m in \S+:\d+$/



=== TEST 12: websockify_buffer_size 256 and 16m are accepted and relay byte-exact
--- config
    location /small {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_buffer_size 256;
    }
    location /large {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_buffer_size 16m;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
for my $path ('/small', '/large') {
    my $c = ws_connect(path => $path);
    is $c->{status}, 101, "$T: $path: status";
    my $data = prng_bytes("limits$path", 300000);
    $c->send(ws_frame(payload => $data), 20);
    is describe_diff($c->read_data(length $data, 20), $data), 'identical', "$T: $path: echoed";
}
