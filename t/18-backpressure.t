# Backpressure is bounded: a client that never reads stops the target (what the target
# manages to send stays within the socket buffers and the relay buffer), and the
# worker's memory stays flat while it does.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a client that never reads stops a flooding target; the worker's memory stays flat
--- http_config
    server {
        # Fixed small socket buffers on nginx's client side (no autotuning), so that
        # the bound below is made of known sizes.
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 sndbuf=16k;
        location /ws {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_buffer_size 64k;
            websockify_ping_interval off;
        }
    }
--- ws_test
my $sessions = 8;
my $t = mock_target(port => rand_port(1), flood => 1, sndbuf => 16384);
my ($w) = nginx_worker_pids();
# One session first, so that the worker's lazily allocated memory is in the baseline.
my $warm = ws_connect(port => rand_port(2));
is $warm->{status}, 101, "$T: warm-up session";
$warm->read_data(1 << 20, 10);
$warm->close;
sleep 0.5;
my $rss0 = worker_rss_kb($w);
my @c = map { ws_connect(port => rand_port(2), rcvbuf => 16384) } 1 .. $sessions;
is scalar(grep { $_->{status} == 101 } @c), $sessions, "$T: $sessions sessions";
# Until no target connection made progress for a second.
my %prev;
my $t0 = time;
wait_until(sub {
    my $moved = grep { my $s = $t->sent($_); my $m = ($prev{$_} // -1) != $s; $prev{$_} = $s; $m }
        2 .. $sessions + 1;
    sleep 1;
    !$moved;
}, 30);
my @sent = map { $t->sent($_) } 2 .. $sessions + 1;
my $rss1 = worker_rss_kb($w);
sleep 2;
my $rss2 = worker_rss_kb($w);
note sprintf "target sent %s; worker VmRSS %d kB, %d kB after %.1f s, %d kB 2 s later",
    "@sent", $rss0, $rss1, time - $t0, $rss2;
# What may sit between the target and a client that reads nothing: the target's send
# buffer, nginx's receive buffer towards it (tcp_rmem's default: it does not grow
# while nginx does not read), the relay buffer (twice, for slack), nginx's send buffer
# and the client's receive buffer (the kernel doubles SO_SNDBUF/SO_RCVBUF), and 64 kB.
my ($rmem) = (slurp('/proc/sys/net/ipv4/tcp_rmem') // '4096 131072') =~ /^\d+\s+(\d+)/;
my $bound = 2 * 16384 + $rmem + 2 * 65536 + 2 * 16384 + 2 * 16384 + 65536;
is scalar(grep { $_ > 0 } @sent), $sessions, "$T: every target connection sent something";
is scalar(grep { $_ > $bound } @sent), 0, "$T: no target sent more than $bound bytes";
# Each session holds at most its relay buffers; 1 MiB for the allocator.
my $allow = $sessions * 2 * 64 + 1024;
cmp_ok $rss1 - $rss0, '<', $allow, "$T: worker memory grew by less than $allow kB";
cmp_ok $rss2 - $rss1, '<', 256, "$T: and stayed flat while the target kept trying";
my $c = $c[0];
$c->send(ws_frame(opcode => 9, payload => 'still there?'));
my $f = $c->read_until_opcode(10, 10);
is $f && $f->{payload}, 'still there?', "$T: a stalled session still answers once its client reads";
--- ws_timeout: 60
