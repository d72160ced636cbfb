# Control frames: ping/pong, close handshake in both directions, protocol errors
# (close 1002).
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: ping -> pong with the same payload, promptly, while the target is silent
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
for my $p ('', 'hello', prng_bytes('ping', 125)) {
    my $t0 = time;
    $c->send(ws_frame(opcode => 9, payload => $p));
    my $f = $c->read_frame(2);
    ok $f && $f->{opcode} == 10, "$T: pong for " . length($p) . "-byte ping";
    is $f && $f->{payload}, $p, "$T: same payload";
    ok time - $t0 < 1, "$T: prompt";
}
# a ping split across writes
$c->send_split(ws_frame(opcode => 9, payload => 'split'), [1], 0.01);
my $f = $c->read_frame(2);
is $f && $f->{payload}, 'split', "$T: pong for split ping";
# pings between data frames do not disturb the stream
$c->send(ws_frame(payload => 'ab') . ws_frame(opcode => 9, payload => 'x') . ws_frame(payload => 'cd'));
is $t->wait_data(4, 5), 'abcd', "$T: data around ping";
$f = $c->read_frame(2);
is $f && $f->{opcode}, 10, "$T: pong";
--- no_error_log
[error]



=== TEST 2: unsolicited pong from the client is ignored
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 10, payload => 'unsolicited') . ws_frame(payload => 'data'));
is $c->read_data(4, 5), 'data', "$T: session continues";
is $t->data, 'data', "$T: pong payload not relayed";



=== TEST 3: client close -> close reply with the same code, TCP closed, target sees EOF
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'last words'));
$c->send(ws_close_frame(1000, 'bye'));
close_ok($c, 1000, 'code echoed', 3);
ok $t->wait_eof(3), "$T: target connection closed";
is $t->data, 'last words', "$T: data before close delivered";



=== TEST 4: client close with an application code (4001) is echoed
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_close_frame(4001, 'app'));
close_ok($c, 4001, 'code 4001 echoed', 3);
ok $t->wait_eof(3), "$T: target closed";



=== TEST 5: client close without a status code gets a close reply without one (echoed)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_close_frame(undef));
close_ok($c, undef, 'close reply', 3);
ok $t->wait_eof(3), "$T: target closed";



=== TEST 6: target EOF -> all data, then close 1000, then TCP close
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $payload = prng_bytes('bye', 100000);
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", send_data => $payload,
    close_after_send => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $got = $c->read_data(12 + length $payload, 5);
is describe_diff($got, "RFB 003.008\n$payload"), 'identical', "$T: all target data before close";
close_ok($c, 1000, 'close after target EOF', 3);
--- error_log eval
WsTest::log_line(info => 'websockify: target closed the connection')



=== TEST 7: target closes right after accept (silent target)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), close_after => 0.3);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
close_ok($c, 1000, 'silent target closed', 3);



=== TEST 8: unmasked client frame -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(payload => 'unmasked', mask => 0));
close_ok($c, 1002, 'unmasked', 3);
ok $t->wait_eof(3), "$T: target closed";
is $t->data, '', "$T: unmasked payload not relayed";
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1002: client frame is not masked')



=== TEST 9: RSV bits without extension -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $rsv (4, 2, 1) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status";
    $c->send(ws_frame(payload => 'x', rsv => $rsv));
    close_ok($c, 1002, "rsv $rsv", 3);
}
my $line = log_line(info => 'websockify: closing with 1002: client frame has reserved bits set');
is scalar(() = error_log_text() =~ /$line/g), 3, "$T: one info line per session";



=== TEST 10: unknown opcodes -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $op (3, 7, 0xB, 0xF) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status";
    $c->send(ws_frame(payload => 'x', opcode => $op));
    close_ok($c, 1002, "opcode $op", 3);
    like error_log_text(),
        log_line(info => "websockify: closing with 1002: client frame has unknown opcode $op"),
        "$T: info line names opcode $op";
}



=== TEST 11: fragmented control frame -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 9, fin => 0, payload => 'frag'));
close_ok($c, 1002, 'fragmented ping', 3);
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1002: client sent a fragmented control frame')



=== TEST 12: control frame longer than 125 bytes -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 9, payload => 'p' x 126));
close_ok($c, 1002, '126-byte ping', 3);
ok !($c->{control} && grep { $_->{opcode} == 10 } @{ $c->{control} }), "$T: no pong";
ok $t->wait_eof(3), "$T: target closed";
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1002: client control frame is longer than 125 bytes')



=== TEST 13: new data frame while a fragmented message is open -> close 1002 (RFC 6455 5.4)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 2, fin => 0, payload => 'a'));
$c->send(ws_frame(opcode => 2, fin => 1, payload => 'b'));
close_ok($c, 1002, 'new data frame inside a fragmented message', 3);
--- error_log eval
WsTest::log_line(info => 'websockify: closing with 1002: client started a message inside a fragmented one')



=== TEST 14: client drops the TCP connection without a close frame -> target sees EOF
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(payload => 'before drop'));
is $t->wait_data(11, 3), 'before drop', "$T: data relayed";
$c->close;
ok $t->wait_eof(3), "$T: target connection closed";

=== TEST 15: bytes from the client that cross our close frame do not reset it away (lingering close)
The target sends more than the client's small receive buffer holds, then hangs up. Our
close 1000 goes out behind that data while the client is not reading, and the session
ends; only then does the client send (a pong). A socket closed at once answers those bytes
with a reset, which throws away what it had not sent yet: the rest of the data and the
close frame. nginx's lingering close reads and discards them instead.
--- http_config
    websockify_zone z 1m;
    server {
        # room for all the target's bytes and the close frame while the client reads nothing
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 sndbuf=1m;
        location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    }
--- config
    location /status { websockify_status zone=z; }
--- ws_test
my $len = 256 * 1024;
my $t = mock_target(port => rand_port(1), send => ['linger', $len], close_after_send => 1);
my $c = ws_connect(port => rand_port(2), rcvbuf => 4096);
is $c->{status}, 101, "$T: 101";
my $active = sub { my $b = http_raw("GET /status HTTP/1.0\r\nHost: x\r\n\r\n")->{body} // ''; $b =~ /"active":(\d+)/ ? $1 : -1 };
ok wait_until(sub { $t->closed(1) }, 10), "$T: the target sent everything and hung up";
ok wait_until(sub { $active->() == 0 }, 10), "$T: the session ended while the client read nothing";
$c->send(ws_frame(opcode => 10, payload => 'late'));
sleep 0.2;    # let a reset, if any, arrive before we read
my $data = $c->read_data($len, 10);
is length($data), $len, "$T: every byte of the target's data arrived";
ok $data eq prng_bytes('linger', $len), "$T: byte-exact";
my $f = $c->read_until_opcode(8, 5);
is $f && $f->{code}, 1000, "$T: then our close 1000";
ok !$c->{error}, "$T: no connection reset" or diag $c->{error};
