# The connect phase as nginx's upstream module does it: a resolver answer from its cache
# (the handler called inside ngx_resolve_name) that ends the request, a client that leaves
# while the target is being resolved or connected (499 at once), the results of
# ngx_event_connect_peer() (a keepalive-cached connection is a success, a connect() that
# fails at once moves to the next server), failover after a connect timeout, and the
# default port 5900.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

our $LogFormat = <<'_EOC_';
    log_format ws '$request_uri|$status|$upstream_addr|$upstream_status|$request_time';
_EOC_

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a cached resolver answer that ends the request (403 -> error_page -> 444)
The second and third requests are answered from the resolver's cache: the resolve handler
runs inside ngx_resolve_name(), under the content handler. Ending the request there must
not free it under the content handler ("http request count is zero").
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off valid=300s;
    resolver_timeout 3s;
--- config
    location /ws {
        set $vnc_host vnc.test;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
        # a network rule lets the name be resolved; its address is then refused: 403
        websockify_allow 10.0.0.0/8;
        error_page 403 502 = @gone;
    }
    location @gone { return 444; }
--- ws_test
my $dns = mock_dns(port => rand_port(9), a => { 'vnc.test' => ['127.0.0.1'] });
my $t = mock_target(port => rand_port(1), banner => "X");
for my $i (1 .. 3) {
    my $c = http_raw(ws_request(), timeout => 5);
    ok !defined $c->{status} && $c->{eof}, "$T: request $i: closed without a response (444)";
}
is scalar(grep { $_ eq 'vnc.test' } $dns->queries), 1, "$T: one DNS query, then the cache";
sleep 0.2;
is $t->connections, 0, "$T: the refused address was never connected";
my $log = error_log_text();
is scalar(() = $log =~ /websockify: target "vnc\.test:\d+" is not allowed/g), 3,
    "$T: one refusal line per request";
--- no_error_log
[alert]
[crit]
request count is zero



=== TEST 2: client leaves while the target is being connected: 499 at once
--- http_config eval
$::LogFormat
--- config
    access_log logs/ws.log ws;
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_connect_timeout 8s;
    }
--- ws_test
my $port = rand_port(1);
my $t = mock_target(port => $port, backlog => 1, no_accept => 1);
my $fill = fill_backlog($port);
my $c = WsTest::Client->new(WsTest::_connect_sock());
$c->send(ws_request());
sleep 1;
my $t0 = time;
$c->close;
ok wait_until(sub { access_log_text('ws.log') =~ m{^/ws}m }, 6), "$T: access log line written";
my $dt = time - $t0;
ok $dt < 3, "$T: the request ended soon after the client left (${dt}s, connect timeout 8s)";
like access_log_text('ws.log'), qr{^/ws\|499\|127\.0\.0\.1:$port\|}m, "$T: logged with 499";
my $log = error_log_text();
like $log, qr/\[info\].*client prematurely closed connection/, "$T: info line";
unlike $log, qr/timed out/, "$T: no connect timeout";
--- no_error_log
[error]
[alert]



=== TEST 3: client leaves while the target's name is being resolved: 499 at once
--- http_config eval
$::LogFormat
--- config
    access_log logs/ws.log ws;
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off;
    resolver_timeout 8s;
    location /ws {
        set $vnc_host slow.test;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
        websockify_allow slow.test;
    }
--- ws_test
# a DNS server that never answers
my $dns = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => rand_port(9),
    Proto => 'udp') or die "udp: $!";
my $c = WsTest::Client->new(WsTest::_connect_sock());
$c->send(ws_request());
sleep 1;
my $t0 = time;
$c->close;
ok wait_until(sub { access_log_text('ws.log') =~ m{^/ws}m }, 6), "$T: access log line written";
my $dt = time - $t0;
ok $dt < 3, "$T: the request ended soon after the client left (${dt}s, resolver timeout 8s)";
like access_log_text('ws.log'), qr{^/ws\|499\|}m, "$T: logged with 499";
like error_log_text(), qr/\[info\].*client prematurely closed connection/, "$T: info line";
--- no_error_log
[error]
[alert]



=== TEST 4: a keepalive-cached connection (NGX_DONE) is a connected target
proxy_pass leaves an idle connection in the group's keepalive cache; the websockify
request that follows gets it from the balancer.
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND} ? 'the keepalive cache times out under valgrind before the session takes it' : undef
--- http_config
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        keepalive 4;
    }
--- config
    location /p {
        proxy_pass http://vnc;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /ws { websockify_pass vnc; }
--- ws_test
my $t = mock_target(port => rand_port(1),
    banner => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nhi\n");
my $p = http_raw("GET /p HTTP/1.0\r\nHost: localhost\r\n\r\n");
is $p->{status}, 200, "$T: proxied request";
is $t->connections, 1, "$T: one connection, now idle in the cache";
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 over the cached connection";
$c->send(ws_frame(payload => 'over keepalive'));
ok wait_until(sub { $t->data =~ /over keepalive$/ }, 5),
    "$T: the payload reached the target on that connection";
is $t->connections, 1, "$T: no new connection";
--- no_error_log
[error]
[alert]



=== TEST 5: a connect() that fails at once (NGX_DECLINED): next server, one log line
nginx's ngx_event_connect_peer() logs that failure itself, naming the target.
--- http_config eval
$::LogFormat . <<'_EOC_';
    upstream vnc {
        server unix:$TEST_NGINX_WS_TMP/missing.sock;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
_EOC_
--- config
    access_log logs/ws.log ws;
    location /ws { websockify_pass vnc; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "two\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(4, 5), "two\n", "$T: from the live server";
$c->close;
my @lines = grep { /missing\.sock/ && /\[(?:crit|error)\]/ } split /\n/, error_log_text();
is scalar(@lines), 1, "$T: one error_log line for the failed server" or diag join "\n", @lines;
like $lines[0] // '', qr/\[crit\].*connect\(\) to unix:.*missing\.sock failed \(2: No such file or directory\)/,
    "$T: nginx's line names the socket and the reason";
wait_until { access_log_text('ws.log') =~ m{^/ws}m } 5;
like access_log_text('ws.log'), qr{^/ws\|101\|unix:\S+missing\.sock, 127\.0\.0\.1:\d+\|502, 101\|}m,
    "$T: access log: both attempts";
--- error_log
[crit]



=== TEST 6: a connect timeout moves to the next server of the group
--- http_config eval
$::LogFormat . <<'_EOC_';
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
_EOC_
--- config
    access_log logs/ws.log ws;
    location /ws {
        websockify_pass vnc;
        websockify_connect_timeout 1s;
    }
--- ws_test
my ($p1, $p2) = (rand_port(1), rand_port(2));
my $dead = mock_target(port => $p1, backlog => 1, no_accept => 1);
my $fill = fill_backlog($p1);
my $live = mock_target(port => $p2, banner => "two\n");
# round robin starts with the first server; a second request covers any other order
my $timed_out;
for my $i (1 .. 2) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: session $i: 101";
    is $c->read_data(4, 5), "two\n", "$T: session $i: from the live server";
    $c->close;
    last if $timed_out = error_log_text() =~ /timed out/;
}
ok $timed_out, "$T: the first server timed out";
like error_log_text(),
    qr/\[error\].*websockify: cannot connect to target "127\.0\.0\.1:$p1": connection timed out/,
    "$T: error_log names the server that timed out";
wait_until { access_log_text('ws.log') =~ /, / } 5;
like access_log_text('ws.log'),
    qr{^/ws\|101\|127\.0\.0\.1:$p1, 127\.0\.0\.1:$p2\|504, 101\|}m,
    "$T: access log: the timed-out attempt (504) and the live one";



=== TEST 7: without a port the target is port 5900 (configured and per request)
--- config
    location /ws { websockify_pass 127.0.0.1; }
    location /var {
        set $vnc_host 127.0.0.1;
        websockify_pass $vnc_host;
        websockify_allow 127.0.0.1 5900;
    }
--- ws_test
SKIP: {
    my $t = eval { mock_target(port => 5900, banner => "RFB 003.008\n") };
    skip "127.0.0.1:5900 is taken on this machine, cannot check the default port", 4 if !$t;
    for my $path ('/ws', '/var') {
        my $c = ws_connect(path => $path);
        is $c->{status}, 101, "$T: $path: 101";
        is $c->read_data(12, 5), "RFB 003.008\n", "$T: $path: the server on port 5900";
    }
}



=== TEST 8: worker_shutdown_timeout while the target's connect is pending: no 101, no session
When a graceful shutdown outlasts worker_shutdown_timeout, nginx calls the read handler
of every connection with c->close set (ngx_shutdown_timer_handler), in the order of its
connection array; a connect still pending has no SO_ERROR yet, but it is no connected
target. An idle connection that closes first frees a slot below the client's for the
target's connection, so that its handler runs first (else the client's ends the request
and closes it). SIGQUIT goes to the worker: the master then starts a new one.
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND} ? 'no master process under valgrind: the shutdown would stop nginx' : undef
--- main_config
    load_module $TEST_NGINX_WEBSOCKIFY_SO;
    worker_shutdown_timeout 1s;
--- http_config
    log_format shut '$request_uri|$status|$upstream_addr|$websockify_session_id';
    websockify_zone z 1m;
--- config
    access_log logs/ws.log shut;
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_connect_timeout 8s;
    }
    location /status { websockify_status zone=z; }
--- ws_test
my $port = rand_port(1);
my $t = mock_target(port => $port, backlog => 1, no_accept => 1);
my $fill = fill_backlog($port);
my @workers = nginx_worker_pids();
is scalar(@workers), 1, "$T: one worker";
my $idle = WsTest::_connect_sock();
sleep 0.2;
my $c = WsTest::Client->new(WsTest::_connect_sock());
sleep 0.2;
close $idle;
sleep 0.2;
$c->send(ws_request());
# The connect must be pending when the shutdown starts: a debug build says when.
if (`$Test::Nginx::Util::NginxBinary -V 2>&1` =~ /--with-debug/) {
    ok wait_until(sub { error_log_text() =~ /connect to 127\.0\.0\.1:$port, fd:/ }, 5), "$T: connecting";
} else {
    sleep 1;
}
kill 'QUIT', $workers[0];
ok $c->wait_eof(8), "$T: the client connection closed";
unlike $c->{buf}, qr{^HTTP/1\.1 101}, "$T: no 101";
is $c->{buf}, '', "$T: closed without a response";
ok wait_until(sub { access_log_text('ws.log') =~ m{^/ws}m }, 5), "$T: access log line written";
like access_log_text('ws.log'), qr{^/ws\|000\|127\.0\.0\.1:$port\|-$}m,
    "$T: logged without a status or a session id";
my $r = http_raw("GET /status HTTP/1.0\r\nHost: x\r\n\r\n");
my $j = eval { require JSON::PP; JSON::PP::decode_json($r->{body} // '') } // {};
is $j->{accepted}, 0, "$T: no session in the zone" or diag $r->{body};
is error_log_count(log_line('info',
    "websockify: the worker is shutting down: connect to target \"127.0.0.1:$port\" abandoned")), 1,
    "$T: one info line";
--- no_error_log
[error]
