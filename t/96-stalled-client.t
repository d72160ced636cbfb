# A client that stops reading, so that nothing moves and even the idle close (1001)
# cannot be delivered: the session must end cleanly (the worker must survive the
# client's later RST), whichever side's event ends it.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use Socket qw(SOL_SOCKET SO_LINGER);

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: stalled client, undeliverable 1001, then the client resets: no worker crash
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1s;
        websockify_send_timeout 30s;
    }
--- ws_test
# The target sends far more than the socket buffers hold; the client reads nothing.
# It does not read either, so the client's own frames back up too.
my $t = mock_target(port => rand_port(1), send => ['flood', 64 << 20], read_delay => 60);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $sock = $c->sock;
$sock->blocking(0);
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
# Two idle periods: the 1001 is queued, then given up on (the session ends from the
# target's timer); then the client resets its connection.
sleep 4;
setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
close $sock;
sleep 1;
unlike error_log_text(), qr/exited on signal/, "$T: worker survived";
my $c2 = ws_connect();
is $c2->{status}, 101, "$T: still serving";
--- no_error_log
exited on signal
[alert]
--- ws_timeout: 30
