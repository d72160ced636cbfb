# Large byte-exact streams both ways, backpressure without loss, frames larger
# than the buffer.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

worker_connections(256);
run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: client -> target, 8 MiB in frames of random sizes, byte-exact
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $data = prng_bytes('c2t', 8 << 20);
srand(42);
my ($off, $frames) = (0, '');
while ($off < length $data) {
    my $n = 1 + int(rand(rand() < 0.5 ? 300 : 200000));
    $frames .= ws_frame(payload => substr($data, $off, $n));
    $off += $n;
}
$c->send($frames, 30);
my $got = $t->wait_data(length $data, 20);
is describe_diff($got, $data), 'identical', "$T: target got the exact stream";



=== TEST 2: target -> client, 8 MiB, byte-exact, binary frames
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['t2c', 8 << 20]);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $got = $c->read_data(8 << 20, 20);
is describe_diff($got, prng_bytes('t2c', 8 << 20)), 'identical', "$T: client got the exact stream";
is_deeply [keys %{ $c->{data_opcodes} }], [2], "$T: binary frames only";



=== TEST 3: both directions at once through an echo target, 4 MiB
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $data = prng_bytes('echo', 4 << 20);
my $frames = '';
for (my $off = 0; $off < length $data; $off += 50000) {
    $frames .= ws_frame(payload => substr($data, $off, 50000));
}
$c->send($frames, 30);   # reads while writing
my $got = $c->read_data(length $data, 20);
is describe_diff($got, $data), 'identical', "$T: echoed stream is exact";



=== TEST 4: backpressure: client stops reading while the target floods 16 MiB, then reads all
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['flood', 16 << 20]);
my $c = ws_connect(rcvbuf => 65536);
is $c->{status}, 101, "$T: status";
sleep 2;   # not reading: nginx must stop reading the target, not drop or buffer without bound
$c->send(ws_frame(opcode => 9, payload => 'still there?'));
my $got = $c->read_data(16 << 20, 25);
is describe_diff($got, prng_bytes('flood', 16 << 20)), 'identical', "$T: no loss after the pause";
my $pong = grep { $_->{opcode} == 10 && $_->{payload} eq 'still there?' } @{ $c->{control} // [] };
if (!$pong) {
    my $f = $c->read_until_opcode(10, 3);
    $pong = $f && $f->{payload} eq 'still there?';
}
ok $pong, "$T: the pong with the ping's payload arrived (queued behind data)";



=== TEST 5: backpressure towards a target that does not read for 2 s
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), read_delay => 2);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $data = prng_bytes('slow', 6 << 20);
my $frames = '';
for (my $off = 0; $off < length $data; $off += 65536) {
    $frames .= ws_frame(payload => substr($data, $off, 65536));
}
$c->send($frames, 30);
my $got = $t->wait_data(length $data, 20);
is describe_diff($got, $data), 'identical', "$T: exact after the target resumed";
$c->send(ws_frame(opcode => 9, payload => 'p'));
my $f = $c->read_until_opcode(10, 3);
is $f && $f->{payload}, 'p', "$T: session still healthy";



=== TEST 6: a single 16 MiB frame with the default buffer size
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $data = prng_bytes('huge', 16 << 20);
$c->send(ws_frame(payload => $data) . ws_frame(payload => 'tail'), 30);
my $got = $t->wait_data(length($data) + 4, 20);
is describe_diff($got, $data . 'tail'), 'identical', "$T: target got the whole frame and the next";



=== TEST 7: small buffer size: 1 MiB frames through a 1k buffer, both ways
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_buffer_size 1k;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
my $data = prng_bytes('small', 1 << 20);
$c->send(ws_frame(payload => $data), 20);
my $got = $c->read_data(length $data, 20);
is describe_diff($got, $data), 'identical', "$T: exact";



=== TEST 8: 40 concurrent sessions, no cross-talk
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1);
my @c = map { ws_connect() } 1 .. 40;
is scalar(grep { ($_->{status} // 0) == 101 } @c), 40, "$T: 40 sessions up";
for my $i (0 .. $#c) {
    $c[$i]->send(ws_frame(payload => prng_bytes("s$i", 20000 + $i)));
}
my $bad = 0;
for my $i (0 .. $#c) {
    my $got = $c[$i]->read_data(20000 + $i, 10);
    $bad++ if $got ne prng_bytes("s$i", 20000 + $i);
}
is $bad, 0, "$T: every session got exactly its own bytes back";
$_->close for @c;
ok $t->wait_connections(40, 2), "$T: 40 target connections";

=== TEST 9: the default websockify_buffer_size is 65543: target data frames are as large as with that size set
Under a flood that piles up while the client pauses, every read of the target fills the
buffer less the room for a frame header, so the largest frame shows the buffer size.
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /set { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; websockify_buffer_size 65543; }
    location /smaller { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; websockify_buffer_size 65536; }
--- ws_test
my $t = mock_target(port => rand_port(1), flood => 1);
my %max;
for my $path ('/ws', '/set', '/smaller') {
    my $c = ws_connect(path => $path);
    is $c->{status}, 101, "$T: $path: 101";
    sleep 0.3;    # the target's bytes pile up behind the full client socket
    my ($got, $max) = (0, 0);
    while ($got < 4 << 20) {
        my $f = $c->read_frame(5) or last;
        next if $f->{opcode} >= 8;
        $got += length $f->{payload};
        $max = length $f->{payload} if length $f->{payload} > $max;
    }
    cmp_ok $got, '>=', 4 << 20, "$T: $path: 4 MiB read";
    $max{$path} = $max;
    $c->close;
}
diag "largest frames: " . join ', ', map { "$_ $max{$_}" } sort keys %max;
cmp_ok $max{'/smaller'}, '<', $max{'/set'}, "$T: the largest frame tells the buffer sizes apart";
is $max{'/ws'}, $max{'/set'}, "$T: the default is 65543";
