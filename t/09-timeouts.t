# Timeouts and the end of a session: the send timeout measures time without progress,
# a client that stops reading is ended by it, and each end is logged once at its level.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

# The module's timers do not log, but nginx's event loop does (debug log): "epoll timer: N"
# is the time to the worker's nearest timer. The timer values the worker waited for after
# the first line matching $re, in that worker.
sub WsTest::Run::epoll_timers_after {
    my ($re) = @_;
    my ($pid, @t);
    for (split /\n/, error_log_text()) {
        if (!defined $pid) {
            ($pid) = /\[debug\] (\d+)#/ if /$re/;
            next;
        }
        push @t, $1 if /\[debug\] $pid#\d+: epoll timer: (-?\d+)$/;
    }
    return @t;
}

__DATA__

=== TEST 1: a client on a slow link that reads steadily outlives the send timeout (re-armed on progress)
--- http_config
    server {
        # A small send buffer, as on a slow link: nginx's writes block every few
        # dozen kB and resume as the client reads.
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 sndbuf=64k;
        location /ws {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_send_timeout 2s;
        }
    }
--- ws_test
my $len = 4 << 20;
my $t = mock_target(port => rand_port(1), send => ['slow link', $len]);
my $c = ws_connect(port => rand_port(2), rcvbuf => 32768);
is $c->{status}, 101, "$T: status";
# About 0.85 MB/s: some 5 s for the whole stream, more than twice the send timeout,
# while each blocked write of nginx's is taken within a few dozen ms.
my $t0 = time;
my $got = $c->read_paced($len, 850_000, 30);
my $took = time - $t0;
note sprintf "read %d bytes in %.1f s", length $got, $took;
is describe_diff($got, prng_bytes('slow link', $len)), 'identical', "$T: the client got every byte";
cmp_ok $took, '>', 4, "$T: the transfer outlasted the 2 s send timeout twice over";
ok !grep({ $_->{opcode} == 8 } @{ $c->{control} // [] }), "$T: no close frame";
ok !$c->{eof}, "$T: the connection is still open";
is error_log_count(qr/websockify: client timed out/), 0, "$T: no send timeout logged";
--- ws_timeout: 40



=== TEST 2: a client that stops reading is ended by websockify_send_timeout, and so is the target
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_send_timeout 1s;
        websockify_read_timeout 60s;
        websockify_ping_interval off;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), send => ['never read', 64 << 20]);
my $t0 = time;
my $c = ws_connect(rcvbuf => 16384);
is $c->{status}, 101, "$T: status";
# The client reads nothing from here on.
ok $t->wait_closed(15), "$T: the target connection was closed";
my $took = time - $t0;
cmp_ok $took, '>=', 0.9, sprintf("$T: not before the send timeout (%.1f s)", $took);
cmp_ok $took, '<', 10, "$T: within a few seconds of it";
cmp_ok $t->sent, '<', 64 << 20, "$T: the target could not send everything";
ok $c->wait_eof(10), "$T: nginx closed the client connection";
is error_log_count(log_line(info => 'websockify: client timed out')), 1, "$T: one info line";
--- no_error_log
[error]
--- ws_timeout: 40



=== TEST 3: the target resets its connection: close 1011, logged at error
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", reset_after => 0.5);
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
close_ok($c, 1011, 'target reset');
--- error_log eval
WsTest::log_line(error => 'websockify: reading from the target failed')
--- no_error_log
[warn]



=== TEST 4: idle session: close 1001, logged at info
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 1s;
        websockify_ping_interval off;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
close_ok($c, 1001, 'idle');
ok $t->wait_eof(5), "$T: target connection closed";
is error_log_count(log_line(info =>
    'websockify: session timed out after 1000 ms without data, closing with 1001')), 1,
    "$T: one info line";
--- no_error_log
[error]
[warn]

=== TEST 5: the default websockify_connect_timeout is 60s
nginx's own 60 s timers are set apart so that the connect timer is the worker's nearest.
--- http_config
    client_header_timeout 90s;
    send_timeout 90s;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_read_timeout 300s;
        websockify_send_timeout 300s;
        websockify_ping_interval off;
    }
--- ws_test
SKIP: {
    skip "nginx without a debug log", 2 if error_log_text() !~ /\[debug\]/;
    my $port = rand_port(1);
    # a full accept queue: the connect stays in progress
    my $t = mock_target(port => $port, backlog => 1, no_accept => 1);
    my $fill = fill_backlog($port);
    my $c = WsTest::Client->new(WsTest::_connect_sock(), 0);
    $c->send(ws_request());
    ok wait_until(sub { error_log_text() =~ /connect to 127\.0\.0\.1:$port, fd:/ }, 5), "$T: connecting";
    my @t;
    wait_until { @t = epoll_timers_after(qr/connect to 127\.0\.0\.1:$port, fd:/) } 5;
    is $t[0], 60000, "$T: the worker then waits 60000 ms for the connect" or diag "@t";
    $c->close;
}

=== TEST 6: the default websockify_send_timeout is 60s
The client reads nothing while the target floods; once the client's socket is full the
send timeout is the worker's nearest timer, armed at that moment.
--- http_config
    client_header_timeout 90s;
    send_timeout 90s;
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_connect_timeout 300s;
        websockify_read_timeout 300s;
        websockify_ping_interval off;
    }
--- ws_test
SKIP: {
    skip "nginx without a debug log", 3 if error_log_text() !~ /\[debug\]/;
    my $port = rand_port(1);
    my $t = mock_target(port => $port, flood => 1);
    my $c = ws_connect(rcvbuf => 4096);
    is $c->{status}, 101, "$T: 101";
    ok wait_until(sub { $t->sent(1) > 1 << 20 }, 10), "$T: the target flooded until it could not";
    my @t;
    wait_until { @t = epoll_timers_after(qr/connect to 127\.0\.0\.1:$port, fd:/); grep { $_ == 60000 } @t } 5;
    ok((grep { $_ == 60000 } @t), "$T: the worker waits 60000 ms once the client is blocked")
        or diag "@t";
    $c->close;
}
