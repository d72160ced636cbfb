# A local failure to connect (ngx_event_connect_peer() -> NGX_ERROR: here no free
# connection left in the worker) is the gateway's fault: 500, and the servers of the
# group are not marked failed, so sessions work again as soon as connections are free.
# nginx itself logs "worker_connections are not enough" at [alert] for it.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use IO::Select;

worker_connections(24);

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: no free connection for the target: 500, the group's servers stay usable
--- http_config
    log_format ws '$request_uri|$status|$upstream_addr|$upstream_status';
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    access_log logs/ws.log ws;
    location /ws { websockify_pass vnc; }
--- ws_test
my @t = (mock_target(port => rand_port(1), banner => "one\n"),
         mock_target(port => rand_port(2), banner => "two\n"));
# Take every free connection with clients that sent half a request (not reusable, so
# nginx cannot reclaim them); the first one nginx cannot take is closed at once.
my @hogs;
my $full;
while (@hogs < 64) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port_client(),
        Proto => 'tcp', Timeout => 5) or last;
    syswrite $s, "GET /ok HTTP/1.1\r\n";
    if (IO::Select->new($s)->can_read(0.15)) {
        $full = 1;
        last;
    }
    push @hogs, $s;
}
ok $full, "$T: nginx ran out of connections after " . scalar(@hogs) . " clients";
# one free connection: the WebSocket client gets it, the target cannot
close shift @hogs;
# Until nginx has seen that close, a new client is the one it cannot take (closed at once).
my $c;
wait_until { $c = http_raw(ws_request()); defined $c->{status} } 5;
is $c->{status}, 500, "$T: no connection for the target: 500";
close $_ for @hogs;
@hogs = ();
sleep 1;
my %seen;
for my $i (1 .. 2) {
    $c = ws_connect();
    is $c->{status}, 101, "$T: connections free again: session $i: 101";
    $seen{ $c->read_data(4, 5) }++;
}
is_deeply \%seen, { "one\n" => 1, "two\n" => 1 }, "$T: both servers still in the group";
my $log = error_log_text();
like $log, qr/\[alert\].*worker_connections are not enough/, "$T: nginx's own alert";
unlike $log, qr/cannot connect to target|no live upstreams/, "$T: no server was blamed";
wait_until { (() = access_log_text('ws.log') =~ m{^/ws}mg) >= 3 } 5;
like access_log_text('ws.log'), qr{^/ws\|500\|}m, "$T: access log: 500";
--- error_log
worker_connections are not enough
[alert]
