# Target addressing (unix sockets, variables) and target failures (502, 504).
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: unix socket target
--- config
    location /ws { websockify_pass unix:$TEST_NGINX_WS_TMP/vnc1.sock; }
--- ws_test
my $t = mock_target(unix => ws_tmp() . "/vnc1.sock", banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'over unix'));
is $c->read_data(9, 5), 'over unix', "$T: echo";
is $t->data, 'over unix', "$T: target got data";
--- no_error_log
[error]



=== TEST 2: address from a variable (set)
--- config
    location /ws {
        set $vnc_addr 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_addr;
        websockify_allow 127.0.0.1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "via set\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(8, 5), "via set\n", "$T: banner from the target";



=== TEST 3: address from a map, evaluated per request (tcp and unix)
--- http_config
    map $arg_vm $vnc_addr {
        one   127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        two   127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        three unix:$TEST_NGINX_WS_TMP/vnc3.sock;
    }
--- config
    location /ws {
        websockify_pass $vnc_addr;
        websockify_allow 127.0.0.0/8;
        websockify_allow unix:$TEST_NGINX_WS_TMP/;
    }
--- ws_test
my @t = (mock_target(port => rand_port(1), banner => "one\n"),
         mock_target(port => rand_port(2), banner => "two\n"),
         mock_target(unix => ws_tmp() . "/vnc3.sock", banner => "three\n"));
for my $vm (qw(two one three two)) {
    my $c = ws_connect(path => "/ws?vm=$vm");
    is $c->{status}, 101, "$T: status for $vm";
    is $c->read_data(length("$vm\n"), 5), "$vm\n", "$T: reached target $vm";
}
is $t[0]->connections, 1, "$T: target one: 1 connection";
is $t[1]->connections, 2, "$T: target two: 2 connections";
is $t[2]->connections, 1, "$T: target three: 1 connection";



=== TEST 4: host from a variable, literal port
--- config
    location /ws {
        set $vnc_host 127.0.0.1;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
        websockify_allow 127.0.0.1 $TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "host+port\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(10, 5), "host+port\n", "$T: banner";



=== TEST 5: variable evaluating to an empty or invalid address -> 4xx/5xx, no 101
--- http_config
    map $arg_vm $vnc_addr {
        default "";
        bad     "127.0.0.1:99999";
        junk    "not an address";
    }
--- config
    location /ws { websockify_pass $vnc_addr; websockify_allow all; }
--- ws_test
for my $vm ('', 'bad', 'junk') {
    my $c = http_raw(ws_request(path => "/ws?vm=$vm"));
    like $c->{status} // '', qr/^[45]\d\d$/, "$T: error status for vm=$vm";
}



=== TEST 6: per-request target not covered by websockify_allow -> 403, never connected
--- config
    location /ws {
        set $vnc_addr 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_addr;
    }
    location /ws2 {
        set $vnc_addr 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_addr;
        websockify_allow 10.0.0.0/8;
        websockify_allow 127.0.0.1 1-1000;
    }
--- ws_test
my $port = rand_port(1);
my $t = mock_target(port => $port, banner => "X");
for my $path ('/ws', '/ws2') {
    my $c = http_raw(ws_request(path => $path));
    is $c->{status}, 403, "$T: 403 on $path";
}
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
like error_log_text(), qr/websockify: target "127\.0\.0\.1:$port" is not allowed/, "$T: error_log";



=== TEST 7: refused target -> 502 naming the target
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $port = rand_port(1);
my $c = http_raw(ws_request());
is $c->{status}, 502, "$T: 502";
ok !exists $c->{headers}{'sec-websocket-accept'}, "$T: no accept header";
like error_log_text(), qr/\[error\].*127\.0\.0\.1:$port/, "$T: error_log names the target";



=== TEST 8: missing unix socket -> 502 naming the path
--- config
    location /ws { websockify_pass unix:$TEST_NGINX_WS_TMP/missing.sock; }
--- ws_test
my $c = http_raw(ws_request());
is $c->{status}, 502, "$T: 502";
my $path = ws_tmp() . "/missing.sock";
like error_log_text(), qr/\Q$path\E/, "$T: error_log names the socket";
--- error_log eval
# nginx logs a missing unix socket at [crit] (ngx_event_connect_peer); [error] is fine too
qr/(?:\[crit\]|\[error\]).*missing\.sock/



=== TEST 9: target that accepts then closes immediately: 101 or 502, never a hang
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), close_after_send => 1);
my $c = ws_connect();
like $c->{status} // '', qr/^(101|502)$/, "$T: status";
if (($c->{status} // 0) == 101) {
    my $f = $c->read_until_opcode(8, 3);
    is $f && $f->{code}, 1000, "$T: close 1000";
    ok $c->wait_eof(3), "$T: TCP closed";
} else {
    pass "$T: 502" for 1 .. 2;
}



=== TEST 10: connect timeout -> 504 (loopback listener with a full accept queue)
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_connect_timeout 500ms;
    }
--- ws_test
my $port = rand_port(1);
my $t = mock_target(port => $port, backlog => 1, no_accept => 1);
my $fill = fill_backlog($port);
my $t0 = time;
my $c = http_raw(ws_request(), timeout => 10);
my $dt = time - $t0;
is $c->{status}, 504, "$T: 504";
ok $dt >= 0.4 && $dt < 5, "$T: after about the connect timeout (${dt}s)";
like error_log_text(), qr/timed out.*127\.0\.0\.1:$port|127\.0\.0\.1:$port.*timed out/,
    "$T: error_log: timed out, naming the target";



=== TEST 11: read timeout: silent target ends the session
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $t0 = time;
ok $c->wait_eof(5), "$T: connection ends";
my $dt = time - $t0;
ok $dt >= 0.8 && $dt < 4, "$T: after about the read timeout (${dt}s)";
ok $t->wait_eof(2), "$T: target connection closed";
--- error_log
timed out



=== TEST 12: read timeout is an idle timeout: regular target data keeps the session up
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 2s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
for my $i (1 .. 8) {
    sleep 0.5;
    $c->send(ws_frame(payload => "tick$i"));
    is $c->read_data(5, 2), "tick$i", "$T: tick $i";
}
ok !$c->{eof}, "$T: still open after 4s of activity (2x the timeout)";



=== TEST 13: send timeout: a target that never reads ends the session
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_send_timeout 1s;
        websockify_read_timeout 60s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), read_delay => 60);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $chunk = ws_frame(payload => prng_bytes('stuck', 1 << 20));
# fill the target's receive buffer and nginx's buffer; our own writes may block too
eval { $c->send($chunk) for 1 .. 16; 1 } or note "client write stopped: $@";
ok $c->wait_eof(8), "$T: session ended by the send timeout";
--- error_log
timed out
