# A client that stops reading, so that nothing moves and even the idle close (1001)
# cannot be delivered: the session must still end, from the timers, and close both
# connections; a client that resets its stalled connection ends the session at once.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: stalled client, undeliverable 1001: the session ends after two idle periods
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1s;
        websockify_send_timeout 30s;
        websockify_ping_interval off;
    }
--- ws_test
# The target sends far more than the socket buffers hold and reads nothing, so the
# client's own frames back up too; the client reads nothing either.
my $t = mock_target(port => rand_port(1), send => ['flood', 64 << 20], read_delay => 60);
my $c = ws_connect(rcvbuf => 16384, sndbuf => 16384);
is $c->{status}, 101, "$T: 101";
my $t0 = time;
my $sock = $c->sock;
# Zero mask key: 64 KiB frames, written until nothing moves for 0.5 s.
my $frame = "\x82\xff" . pack('NN', 0, 65536) . "\0\0\0\0" . ("x" x 65536);
my ($sent, $off, $last) = (0, 0, time);
while (time - $last < 0.5) {
    my $n = syswrite($sock, $frame, length($frame) - $off, $off);
    if ($n) {
        ($sent, $off, $last) = ($sent + $n, ($off + $n) % length $frame, time);
    } else {
        sleep 0.02;
    }
}
ok $sent > 0, "$T: client stalled after $sent bytes";
# One idle period queues the 1001, the next gives up on delivering it: the session
# ends from the timer, long before the 30 s send timeout.
ok $t->wait_closed(15), "$T: the target connection was closed";
my $took = time - $t0;
cmp_ok $took, '<', 12, sprintf("$T: about two idle periods after the stall (%.1f s)", $took);
ok $c->wait_eof(10), "$T: nginx closed the client connection";
is error_log_count(log_line(info =>
    'websockify: session timed out after 1000 ms without data, closing with 1001')), 1,
    "$T: the idle timeout logged once";
my $c2 = ws_connect();
is $c2->{status}, 101, "$T: still serving";
--- no_error_log
[error]
--- ws_timeout: 40



=== TEST 2: stalled client resets its connection: the session ends at once
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 30s;
        websockify_send_timeout 30s;
        websockify_ping_interval off;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['flood', 64 << 20], read_delay => 60);
my $c = ws_connect(rcvbuf => 16384);
is $c->{status}, 101, "$T: 101";
ok wait_until(sub { $t->sent > (1 << 20) }, 10), "$T: the target filled the buffers";
sleep 0.5;
my $sock = $c->sock;
setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
close $sock;
my $t0 = time;
ok $t->wait_closed(10), "$T: the target connection was closed";
cmp_ok time - $t0, '<', 5, "$T: at once, not after the 30 s timeouts";
my $c2 = ws_connect();
is $c2->{status}, 101, "$T: still serving";
--- ws_timeout: 40
