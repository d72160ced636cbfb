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
my $f = $c->read_until_opcode(8, 3);
ok $f, "$T: close reply";
is $f && $f->{code}, 1000, "$T: code echoed";
ok $c->wait_eof(3), "$T: server closed the TCP connection";
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
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 4001, "$T: code 4001 echoed";
ok $c->wait_eof(3), "$T: TCP closed";
ok $t->wait_eof(3), "$T: target closed";



=== TEST 5: client close without a status code gets a close reply
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_close_frame(undef));
my $f = $c->read_until_opcode(8, 3);
ok $f, "$T: close reply";
ok !$f || length($f->{payload}) == 0 || $f->{code} == 1000, "$T: empty or 1000";
ok $c->wait_eof(3), "$T: TCP closed";
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
my $f = $c->read_until_opcode(8, 3);
ok $f, "$T: close frame after target EOF";
is $f && $f->{code}, 1000, "$T: code 1000";
ok $c->wait_eof(3), "$T: TCP closed";



=== TEST 7: target closes right after accept (silent target)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), close_after => 0.3);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 1000, "$T: close 1000";
ok $c->wait_eof(3), "$T: TCP closed";



=== TEST 8: unmasked client frame -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(payload => 'unmasked', mask => 0));
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 1002, "$T: close 1002";
ok $c->wait_eof(3), "$T: TCP closed";
ok $t->wait_eof(3), "$T: target closed";
is $t->data, '', "$T: unmasked payload not relayed";
--- error_log eval
qr/websockify: .*1002/



=== TEST 9: RSV bits without extension -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $rsv (4, 2, 1) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status";
    $c->send(ws_frame(payload => 'x', rsv => $rsv));
    my $f = $c->read_until_opcode(8, 3);
    is $f && $f->{code}, 1002, "$T: close 1002 for rsv $rsv";
    ok $c->wait_eof(3), "$T: TCP closed";
}
--- error_log eval
qr/websockify: .*1002/



=== TEST 10: unknown opcodes -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
for my $op (3, 7, 0xB, 0xF) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: status";
    $c->send(ws_frame(payload => 'x', opcode => $op));
    my $f = $c->read_until_opcode(8, 3);
    is $f && $f->{code}, 1002, "$T: close 1002 for opcode $op";
    ok $c->wait_eof(3), "$T: TCP closed";
}
--- error_log eval
qr/websockify: .*1002/



=== TEST 11: fragmented control frame -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 9, fin => 0, payload => 'frag'));
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 1002, "$T: close 1002";
ok $c->wait_eof(3), "$T: TCP closed";
--- error_log eval
qr/websockify: .*1002/



=== TEST 12: control frame longer than 125 bytes -> close 1002
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 9, payload => 'p' x 126));
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 1002, "$T: close 1002";
ok !($c->{control} && grep { $_->{opcode} == 10 } @{ $c->{control} }), "$T: no pong";
ok $c->wait_eof(3), "$T: TCP closed";
ok $t->wait_eof(3), "$T: target closed";
--- error_log eval
qr/websockify: .*1002/



=== TEST 13: new data frame while a fragmented message is open -> close 1002 (RFC 6455 5.4)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 2, fin => 0, payload => 'a'));
$c->send(ws_frame(opcode => 2, fin => 1, payload => 'b'));
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 1002, "$T: new data frame inside a fragmented message -> 1002";
ok $c->wait_eof(3), "$T: TCP closed";
--- error_log eval
qr/websockify: .*1002/



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
