# Data relay: client frames (all length encodings, split at any byte, many per
# read, fragmented, text) reach the target as one byte stream; target bytes come
# back as binary frames.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: 7-, 16- and 64-bit payload lengths, client -> target
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
my $expect = '';
for my $len (1, 125, 126, 127, 65535, 65536, 70000, 0, 300000) {
    my $p = prng_bytes("len$len", $len);
    $c->send(ws_frame(payload => $p));
    $expect .= $p;
}
my $got = $t->wait_data(length $expect, 10);
is describe_diff($got, $expect), 'identical', "$T: target got every payload byte in order";
ok !$t->eof, "$T: target connection still open";
--- no_error_log
[error]
[alert]



=== TEST 2: frames split at every byte across TCP writes
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my @p = (prng_bytes('a', 5), prng_bytes('b', 130), prng_bytes('c', 3));
my $frames = ws_frame(payload => $p[0]) . ws_frame(payload => $p[1])
    . ws_frame(payload => $p[2], opcode => 2);
$c->send_split($frames, [1], 0.003);
my $expect = join '', @p;
is describe_diff($t->wait_data(length $expect, 5), $expect), 'identical', "$T: one byte per write";
# a 64-bit-length frame split inside its length field and its mask key
my $big = prng_bytes('d', 70000);
my $f = ws_frame(payload => $big);
$c->send_split($f, [1, 2, 3, 5, 8, 13, 4096], 0.003);
$expect .= $big;
is describe_diff($t->wait_data(length $expect, 10), $expect), 'identical', "$T: irregular splits";
--- no_error_log
[error]



=== TEST 3: many frames in one write
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my ($buf, $expect) = ('', '');
for my $i (1 .. 2000) {
    my $p = prng_bytes("m$i", $i % 200);
    $buf .= ws_frame(payload => $p);
    $expect .= $p;
}
$c->send($buf);
is describe_diff($t->wait_data(length $expect, 10), $expect), 'identical', "$T: all 2000 frames";



=== TEST 4: fragmented messages: continuation frames carry data (control frame in between)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 2, fin => 0, payload => 'first-'));
$c->send(ws_frame(opcode => 0, fin => 0, payload => 'second-'));
$c->send(ws_frame(opcode => 9, payload => 'ping-in-between'));
$c->send(ws_frame(opcode => 0, fin => 0, payload => prng_bytes('x', 70000)));
$c->send(ws_frame(opcode => 0, fin => 1, payload => '-last'));
$c->send(ws_frame(opcode => 2, payload => '|next message'));
my $expect = 'first-second-' . prng_bytes('x', 70000) . '-last|next message';
is describe_diff($t->wait_data(length $expect, 5), $expect), 'identical', "$T: target got all fragments";
my $pong = $c->read_until_opcode(10, 5);
is $pong && $pong->{payload}, 'ping-in-between', "$T: ping between fragments answered";



=== TEST 5: text frames in binary mode are relayed like binary
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(opcode => 1, payload => "text payload \x{e2}\x{82}\x{ac}"));
$c->send(ws_frame(opcode => 1, fin => 0, payload => "frag"));
$c->send(ws_frame(opcode => 0, payload => "mented"));
my $expect = "text payload \x{e2}\x{82}\x{ac}fragmented";
is $t->wait_data(length $expect, 5), $expect, "$T: text payload passed through";
ok !$c->{eof}, "$T: connection not closed";
my $f = $c->read_frame(0.3);
ok !($f && $f->{opcode} == 8), "$T: no close frame";



=== TEST 6: target -> client: exact bytes in binary frames, in order
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $expect = '';
for my $len (1, 100, 126, 1000, 65535, 65536, 200000) {
    my $p = prng_bytes("e$len", $len);
    $c->send(ws_frame(payload => $p));
    $expect .= $p;
}
my $got = $c->read_data(length $expect, 10);
is describe_diff($got, $expect), 'identical', "$T: echoed bytes";
is_deeply [keys %{ $c->{data_opcodes} }], [2], "$T: only binary frames";
ok !$c->{masked_frames}, "$T: server frames are unmasked";
ok !$c->{rsv_frames}, "$T: no RSV bits";



=== TEST 7: frames pipelined in the same write as the handshake reach the target
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $extra = ws_frame(payload => "RFB 003.008\n") . ws_frame(payload => "\x01")
    . ws_frame(payload => prng_bytes('pipe', 3000));
my $c = ws_connect(extra => $extra);
is $c->{status}, 101, "$T: status";
my $expect = "RFB 003.008\n\x01" . prng_bytes('pipe', 3000);
is describe_diff($t->wait_data(length $expect, 5), $expect), 'identical', "$T: pipelined frames relayed";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner still delivered";



=== TEST 8: empty data frames are harmless
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
$c->send(ws_frame(payload => '') . ws_frame(payload => 'a') . ws_frame(payload => '', opcode => 2)
    . ws_frame(payload => 'b'));
is $c->read_data(2, 5), 'ab', "$T: data around empty frames";



=== TEST 9: interactive exchange, target speaks first (RFB-like)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner before any client data";
for my $i (1 .. 20) {
    my $msg = "msg $i " . ('z' x $i);
    $c->send(ws_frame(payload => $msg));
    is $c->read_data(length $msg, 5), $msg, "$T: round trip $i";
}
