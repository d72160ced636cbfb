# Operating consoles: per-session variables in the access log, the shared zone and its
# status endpoint (JSON, Prometheus) across two workers, ending a session from the server,
# session lifetime, caps with limit_conn.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;

workers(2);
master_on();

run_tests();
Test::More::done_testing();

sub status_json {
    my ($path) = @_;
    my $r = http_raw("GET " . ($path // '/websockify-status') . " HTTP/1.0\r\nHost: x\r\n\r\n",
        port => rand_port(3));
    return ($r->{status}, $r->{body} // '', $r->{headers});
}

sub operate_conf {
    my ($lifetime) = @_;
    return recipe('operate.conf',
        'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3 reuseport;',
        '127.0.0.1:5901' => '127.0.0.1:$TEST_NGINX_RAND_PORT_1',
        '/var/log/nginx/websockify.log' => 'logs/ws.log',
        '8h' => $lifetime // '8h');
}

__DATA__

=== TEST 1: the status lists each live session of both workers, field by field, bytes exact
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my @s;
for my $i (1 .. 4) {   # limit_conn per_client 4
    my $c = ws_connect(port => rand_port(3), path => "/websockify?desk=$i");
    is $c->{status}, 101, "$T: session $i opened";
    $c->read_data(12, 5);
    $c->send(ws_frame(payload => 'x' x (100 * $i)));
    push @s, $c;
}
wait_until { $t->connections == 4 && $t->data_len(4) == 400 } 5;
# The owners write their counters to the zone every 500 ms.
my ($st, $body, $h);
require JSON::PP;
wait_until {
    ($st, $body, $h) = main::status_json();
    my $d = eval { JSON::PP::decode_json($body) };
    $d && $d->{bytes_from_client} == 1000 && $d->{bytes_to_client} == 48
} 5;
is $st, 200, "$T: status 200";
like $h->{'content-type'}, qr{^application/json}, "$T: JSON";
my $j = eval { require JSON::PP; JSON::PP::decode_json($body) } or diag $body;
is scalar @{ $j->{sessions} }, 4, "$T: four sessions listed";
is $j->{active}, 4, "$T: active";
is $j->{accepted}, 4, "$T: accepted";
my %pids = map { $_->{pid} => 1 } @{ $j->{sessions} };
my %ups = map { $_->{bytes_from_client} => 1 } @{ $j->{sessions} };
is_deeply [sort { $a <=> $b } keys %ups], [100, 200, 300, 400], "$T: bytes from each client, exact";
for my $x (@{ $j->{sessions} }) {
    is $x->{bytes_to_client}, 12, "$T: $x->{id}: bytes to client";
    is $x->{frames_from_client}, 1, "$T: $x->{id}: frames";
    is $x->{client}, '127.0.0.1', "$T: $x->{id}: client";
    is $x->{target}, '127.0.0.1:' . rand_port(1), "$T: $x->{id}: target";
    is $x->{location}, '/websockify', "$T: $x->{id}: location";
    like $x->{id}, qr/^$x->{pid}-\d+$/, "$T: $x->{id}: id names the worker";
    cmp_ok abs($x->{started} - time), '<', 30, "$T: $x->{id}: start time";
}
ok kill(0, $_), "$T: pid $_ is a live worker" for keys %pids;
is $j->{bytes_from_client}, 1000, "$T: total bytes from clients";
$_->send(ws_close_frame(1000)) for @s;
ok wait_until(sub { my (undef, $b) = main::status_json(); $b =~ /"active":0,/ }, 5), "$T: sessions leave the zone when they end";
my (undef, $after) = main::status_json();
like $after, qr/"closed":\{"client":4,/, "$T: counted as closed by the client";
like $after, qr/"bytes_from_client":1000,"bytes_to_client":48\}/, "$T: totals keep the ended sessions' bytes";
--- no_error_log
[alert]
[crit]

=== TEST 2: Prometheus text exposition
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=1');
is $c->{status}, 101, "$T: session";
$c->read_data(12, 5);
$c->send(ws_frame(payload => 'abc'));
# The owner writes its counters to the zone every 500 ms.
my ($st, $body, $h);
wait_until {
    ($st, $body, $h) = main::status_json('/websockify-status?format=prometheus');
    $body =~ /^websockify_live_payload_bytes\{[^}]*direction="from_client"\} 3$/m
} 5;
is $st, 200, "$T: 200";
like $h->{'content-type'}, qr{^text/plain; version=0\.0\.4}, "$T: content type";
my $p = rand_port(1);
for my $line ("# TYPE websockify_sessions gauge",
              "websockify_sessions{target=\"127.0.0.1:$p\"} 1",
              "# TYPE websockify_sessions_accepted_total counter",
              "websockify_sessions_accepted_total 1",
              "websockify_sessions_closed_total{cause=\"revoked\"} 0",
              "websockify_sessions_untracked_total 0",
              "websockify_payload_bytes_total{direction=\"from_client\"} 3",
              "websockify_payload_bytes_total{direction=\"to_client\"} 12",
              "websockify_live_payload_bytes{target=\"127.0.0.1:$p\",direction=\"from_client\"} 3") {
    ok((grep { $_ eq $line } split /\n/, $body), "$T: $line") or diag $body;
}
my ($bad) = main::status_json('/websockify-status?format=xml');
is $bad, 400, "$T: unknown format is 400";

=== TEST 3: DELETE ends a session wherever it lives: close 4000 "revoked", logged
--- http_config eval: main::operate_conf()
--- config
    location /st2 {
        websockify_status zone=consoles;
        add_header X-Pid $pid always;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my ($cross, $worst, %owners) = (0, 0);
# Twelve sessions, more until both workers had one: which worker accepts is the kernel's
# choice (under valgrind one may win many times in a row).
for (my $i = 1; $i <= 12 || (keys %owners < 2 && $i <= 40); $i++) {
    my $c = ws_connect(port => rand_port(3), path => "/websockify?desk=$i");
    is $c->{status}, 101, "$T: session $i";
    $c->read_data(12, 5);
    my (undef, $body) = main::status_json();
    my ($id, $pid) = $body =~ /"id":"((\d+)-\d+)"/ or do { fail "$T: listed"; next };
    $owners{$pid}++;
    my $t0 = time;
    my $d = http_raw("DELETE /st2/sessions/$id HTTP/1.0\r\nHost: x\r\n\r\n");
    is $d->{status}, 202, "$T: DELETE accepted";
    $cross++ if ($d->{headers}{'x-pid'} // $pid) != $pid;
    my $f = $c->read_until_opcode(8, 5);
    my $dt = time - $t0;
    $worst = $dt if $dt > $worst;
    is $f && $f->{code}, 4000, "$T: close 4000";
    is $f && substr($f->{payload}, 2), 'revoked', "$T: reason revoked";
    ok $c->wait_eof(5), "$T: connection closed";
    ok wait_until(sub { $t->eof($i) }, 5), "$T: target closed";
}
diag sprintf "revoked within %.3f s at most; %d across workers", $worst, $cross;
cmp_ok $cross, '>=', 1, "$T: some sessions were revoked from the other worker";
is scalar(keys %owners), 2, "$T: sessions lived on both workers";
my $d = http_raw("DELETE /websockify-status/sessions/1-1 HTTP/1.0\r\nHost: x\r\n\r\n", port => rand_port(3));
is $d->{status}, 404, "$T: unknown session is 404";
my $g = http_raw("POST /websockify-status HTTP/1.0\r\nHost: x\r\n\r\n", port => rand_port(3));
is $g->{status}, 405, "$T: other methods 405";
ok wait_until(sub { access_log_text('ws.log') =~ /close=4000 cause=revoked/ }, 5), "$T: access log has code and cause";
like error_log_text(), qr/\[info\].*websockify: session \d+-\d+ revoked through the status location/, "$T: info line for the DELETE";

=== TEST 4: the session lifetime ends a session on time (4001 "expired"); a variable sets it
--- http_config eval: main::operate_conf('1500ms')
--- config
    location /var {
        set $life 2s;
        websockify_session_timeout $life;
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
for my $case (['/websockify?desk=1', 1.5, rand_port(3)], ['/var', 2, server_port_client()]) {
    my ($path, $want, $port) = @$case;
    my $t0 = time;
    my $c = ws_connect(port => $port, path => $path);
    is $c->{status}, 101, "$T: $path: 101";
    # keep the session busy: the lifetime is not an idle timeout
    my $f;
    while (time - $t0 < 6) {
        $c->send(ws_frame(payload => 'ping'));
        $f = $c->read_frame(0.2) or next;
        last if $f->{opcode} == 8;
    }
    my $dt = time - $t0;
    is $f && $f->{opcode}, 8, "$T: $path: closed";
    is $f && $f->{code}, 4001, "$T: $path: close 4001";
    is $f && substr($f->{payload}, 2), 'expired', "$T: $path: reason";
    cmp_ok $dt, '>=', $want - 0.05, "$T: $path: not before $want s ($dt)";
    cmp_ok $dt, '<', $want + 3, "$T: $path: on time ($dt)";
}
ok wait_until(sub { access_log_text('ws.log') =~ /close=4001 cause=lifetime/ }, 5), "$T: logged as lifetime";

=== TEST 5: the access log line carries every session variable
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=5');
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: greeting";
$c->send(ws_frame(payload => 'hello'));
is $c->read_data(5, 5), 'hello', "$T: echo";
$c->send(ws_frame(opcode => 9, payload => 'p'));
$c->read_until_opcode(10, 5);
$c->send(ws_close_frame(1000));
$c->read_until_opcode(8, 5);
# as a browser does: nginx lingers until the client closes too, then logs
$c->close;
my $p = rand_port(1);
ok wait_until(sub { access_log_text('ws.log') =~ /session=/ }, 5), "$T: line written";
like access_log_text('ws.log'),
    qr{"/websockify\?desk=5" 101 session=\d+-\d+ target=127\.0\.0\.1:$p up=5 down=17 frames=3 close=1000 cause=client time=},
    "$T: every field";

=== TEST 6: limit_conn refuses a second viewer of the same desktop with 503, before the 101
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $a = ws_connect(port => rand_port(3), path => '/websockify?desk=7');
is $a->{status}, 101, "$T: first viewer";
sleep 0.2;
my $b = ws_connect(port => rand_port(3), path => '/websockify?desk=7');
is $b->{status}, 503, "$T: second viewer of the same desktop";
my $other = ws_connect(port => rand_port(3), path => '/websockify?desk=8');
is $other->{status}, 101, "$T: another desktop";
ok wait_until(sub { $t->connections == 2 }, 5), "$T: two sessions reached the target";
sleep 0.3;
is $t->connections, 2, "$T: the refused one never did";
$a->send(ws_close_frame(1000));
ok $a->read_until_opcode(8, 5), "$T: first viewer's close answered";
# as a browser does after the close handshake: nginx's lingering close (5 s) ends at once,
# and with it the request that holds the limit_conn slot
$a->close;
ok wait_until(sub { my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=7'); $c->{status} == 101 }, 5), "$T: free again once the first ended";

=== TEST 7: status locations with an if, limit_except and a regex; a session leaves the zone as it ends
--- http_config eval: main::operate_conf()
--- config
    location /st-if {
        websockify_status zone=consoles;
        if ($arg_x) { set $audit 1; }
    }
    location /st-le {
        websockify_status zone=consoles;
        limit_except GET { allow 127.0.0.1; deny all; }
    }
    location /st-deny {
        websockify_status zone=consoles;
        limit_except GET { deny all; }
    }
    location ~ ^/rx-(status)$ { websockify_status zone=consoles; }
    location ~ ^/rx-status/ { websockify_status zone=consoles; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $get = sub { http_raw("GET $_[0] HTTP/1.0\r\nHost: x\r\n\r\n") };
my $del = sub { http_raw("DELETE $_[0] HTTP/1.0\r\nHost: x\r\n\r\n") };
for my $path ('/st-if?x=1', '/st-if', '/st-le', '/rx-status') {
    is $get->($path)->{status}, 200, "$T: GET $path";
}
my $desk = 10;
for my $loc ('/st-if', '/st-le', '/rx-status') {
    # a desk of its own: the revoked one may still be ending (limit_conn per_desk 1)
    my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=' . $desk++);
    is $c->{status}, 101, "$T: $loc: session";
    $c->read_data(12, 5);
    wait_until { $get->('/st-if?x=1')->{body} =~ /"active":1,/ } 5;
    my ($id) = $get->('/st-if?x=1')->{body} =~ /"id":"(\d+-\d+)"/;
    is $del->("/st-deny/sessions/$id")->{status}, 403, "$T: $loc: limit_except denies DELETE there";
    is $del->("$loc/sessions/$id?x=1")->{status}, 202, "$T: $loc: DELETE";
    my $f = $c->read_until_opcode(8, 5);
    is $f && $f->{code}, 4000, "$T: $loc: revoked";
}
# the client reads our close and keeps its TCP connection open: nginx lingers, and the
# session must not stay listed meanwhile
my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=2');
$c->read_data(12, 5);
$c->send(ws_frame(payload => 'x'));
$c->read_data(1, 5);
$t->stop;
my $f = $c->read_until_opcode(8, 5);
is $f && $f->{code}, 1000, "$T: target gone, close 1000";
my $t0 = time;
ok wait_until(sub { $get->('/st-le')->{body} =~ /"active":0,/ }, 5), "$T: gone from the zone";
cmp_ok time - $t0, '<', 1.5, "$T: at once, not after the lingering close";
like $get->('/st-le')->{body}, qr/"target_eof":1,/, "$T: counted by cause";

=== TEST 8: DELETE names a whole session id: a prefix of a live one is 404 and ends nothing
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=1');
is $c->{status}, 101, "$T: session";
$c->read_data(12, 5);
my (undef, $body) = main::status_json();
my ($id) = $body =~ /"id":"(\d+-\d+)"/ or diag $body;
my $del = sub { http_raw("DELETE /websockify-status/sessions/$_[0] HTTP/1.0\r\nHost: x\r\n\r\n", port => rand_port(3)) };
for my $prefix (substr($id, 0, -1), $id =~ /^(\d+-)/) {
    is $del->($prefix)->{status}, 404, "$T: DELETE $prefix (a prefix of $id) is 404";
}
sleep 1.2;    # past two sync ticks: a revoke would have been acted on
$c->send(ws_frame(payload => 'still here'));
is $c->read_data(10, 5), 'still here', "$T: the session still relays";
ok !grep({ $_->{opcode} == 8 } @{ $c->{control} // [] }), "$T: no close frame";
is $del->($id)->{status}, 202, "$T: the whole id is accepted";
my $f = $c->read_until_opcode(8, 5);
is $f && $f->{code}, 4000, "$T: and revokes it";

=== TEST 9: the sync timer keeps running: counters move after the first tick, a late DELETE is honoured
--- http_config eval: main::operate_conf()
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect(port => rand_port(3), path => '/websockify?desk=1');
is $c->{status}, 101, "$T: session";
$c->read_data(12, 5);
my $t0 = time;
my $up = sub {
    my (undef, $b) = main::status_json();
    my ($n) = $b =~ /"sessions":\[\{[^}]*"bytes_from_client":(\d+)/;
    $n // -1;
};
$c->send(ws_frame(payload => 'a' x 10));
is $c->read_data(10, 5), 'a' x 10, "$T: echoed";
ok wait_until(sub { $up->() == 10 }, 5), "$T: first counters in the zone";
sleep 0.7 - (time - $t0) if time - $t0 < 0.7;    # past the first tick (500 ms)
$c->send(ws_frame(payload => 'b' x 20));
is $c->read_data(20, 5), 'b' x 20, "$T: echoed again";
ok wait_until(sub { $up->() == 30 }, 5), "$T: counters grew after the first tick (" . $up->() . ")";
sleep 1.6 - (time - $t0) if time - $t0 < 1.6;
$c->send(ws_frame(payload => 'c'));
is $c->read_data(1, 5), 'c', "$T: still relaying after 1.5 s";
my (undef, $body) = main::status_json();
my ($id) = $body =~ /"id":"(\d+-\d+)"/;
my $d = http_raw("DELETE /websockify-status/sessions/$id HTTP/1.0\r\nHost: x\r\n\r\n", port => rand_port(3));
is $d->{status}, 202, "$T: DELETE after more than a second accepted";
my $f = $c->read_until_opcode(8, 3);
is $f && $f->{code}, 4000, "$T: and acted on: close 4000";
