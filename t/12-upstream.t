# nginx-conf/upstream-group.conf: websockify_pass to upstream {} groups. Round robin
# reaches both servers, hash $arg_token consistent is sticky, a dead server is skipped
# (logged, $upstream_status 502 then 101), all dead -> 502. Plus a group chosen per
# request by name (allowed by websockify_allow upstream:NAME rules).
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

# the recipe with the test's ports; a log of the upstream variables
our $Recipe = recipe('upstream-group.conf',
    '127.0.0.1:5901' => '127.0.0.1:$TEST_NGINX_RAND_PORT_1',
    '127.0.0.1:5902' => '127.0.0.1:$TEST_NGINX_RAND_PORT_2',
    'listen 127.0.0.1:6080;' => "listen 127.0.0.1:\$TEST_NGINX_RAND_PORT_3;\n"
        . '    access_log logs/ws.log ws;');
our $LogFormat = <<'_EOC_';
    log_format ws '$request_uri|$status|$upstream_addr|$upstream_status|$upstream_connect_time';
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $LogFormat . $Recipe) if !defined $block->http_config;
});

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: round robin reaches both servers in turn
--- ws_test
my @t = (mock_target(port => rand_port(1), banner => "one\n"),
         mock_target(port => rand_port(2), banner => "two\n"));
my %seen;
for (1 .. 4) {
    my $c = ws_connect(port => rand_port(3), path => '/websockify');
    is $c->{status}, 101, "$T: session $_: 101";
    my $b = $c->read_data(4, 5);
    like $b, qr/^(one|two)\n$/, "$T: session $_: a banner";
    $seen{$b}++;
}
is $seen{"one\n"}, 2, "$T: server one got 2 of 4";
is $seen{"two\n"}, 2, "$T: server two got 2 of 4";
my ($p1, $p2) = (rand_port(1), rand_port(2));
wait_until { (() = access_log_text('ws.log') =~ /\n/g) >= 4 } 5;
my @lines = split /\n/, access_log_text('ws.log');
is scalar(grep { m{^/websockify\|101\|127\.0\.0\.1:(?:$p1|$p2)\|101\|\d+\.\d{3}$} } @lines), 4,
    "$T: access log: \$upstream_addr, \$upstream_status 101, \$upstream_connect_time"
    or diag join "\n", @lines;
--- no_error_log
[error]



=== TEST 2: hash $arg_token consistent: the same token always reaches the same server
--- ws_test
my @t = (mock_target(port => rand_port(1), banner => "one\n"),
         mock_target(port => rand_port(2), banner => "two\n"));
my %where;
for my $token (map { "user$_" } 1 .. 16) {
    my %got;
    for (1 .. 3) {
        my $c = ws_connect(port => rand_port(3), path => "/websockify-by-token?token=$token");
        $got{ $c->read_data(4, 5) }++ if $c->{status} == 101;
    }
    my @k = keys %got;
    ok @k == 1 && $got{ $k[0] } == 3, "$T: $token: 3 sessions, one server"
        or diag explain \%got;
    $where{ $k[0] // '' }++;
}
ok $where{"one\n"} && $where{"two\n"}, "$T: tokens are spread over both servers"
    or diag explain \%where;
--- no_error_log
[error]



=== TEST 3: a dead server is skipped: 101 from the next one, the failure logged
--- ws_test
my ($p1, $p2) = (rand_port(1), rand_port(2));
# nothing listens on port 1
my $t = mock_target(port => $p2, banner => "two\n");
for (1 .. 3) {
    my $c = ws_connect(port => rand_port(3), path => '/websockify');
    is $c->{status}, 101, "$T: session $_: 101";
    is $c->read_data(4, 5), "two\n", "$T: session $_: from the live server";
}
is $t->connections, 3, "$T: the live server got every session";
like error_log_text(),
    qr/\[error\].*websockify: cannot connect to target "127\.0\.0\.1:$p1": \(111: Connection refused\)/,
    "$T: error_log names the dead server";
wait_until { (() = access_log_text('ws.log') =~ /\n/g) >= 3 } 5;
like access_log_text('ws.log'),
    qr{^/websockify\|101\|127\.0\.0\.1:$p1, 127\.0\.0\.1:$p2\|502, 101\|-, \d+\.\d{3}$}m,
    "$T: access log: both attempts (connect time \"-\" for the failed one, as proxy_pass)";



=== TEST 4: all servers dead -> 502, each failure logged, then "no live upstreams"
--- ws_test
my ($p1, $p2) = (rand_port(1), rand_port(2));
my $c = ws_connect(port => rand_port(3), path => '/websockify-by-token?token=x');
is $c->{status}, 502, "$T: 502";
my $log = error_log_text();
like $log, qr/cannot connect to target "127\.0\.0\.1:$p1"/, "$T: server one logged";
like $log, qr/cannot connect to target "127\.0\.0\.1:$p2"/, "$T: server two logged";
my $c2 = ws_connect(port => rand_port(3), path => '/websockify-by-token?token=x');
is $c2->{status}, 502, "$T: again 502 while both are marked down";
like error_log_text(), qr/\[error\].*websockify: no live upstreams/, "$T: \"no live upstreams\", as nginx says";
wait_until { (() = access_log_text('ws.log') =~ /\n/g) >= 2 } 5;
like access_log_text('ws.log'), qr{^/websockify-by-token\?token=x\|502\|127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+\|502, 502\|}m,
    "$T: access log: two failed attempts";



=== TEST 5: a group named per request needs an upstream: rule; other values still need rules
--- http_config
    upstream vnc_a { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    upstream vnc_b { server 127.0.0.1:$TEST_NGINX_RAND_PORT_2; }
    upstream internal_api { server 127.0.0.1:$TEST_NGINX_RAND_PORT_2; }
    map $arg_desk $vnc_target {
        default "";
        a       vnc_a;
        b       vnc_b;
        api     internal_api;
        direct  127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- config
    location /ws {
        if ($vnc_target = "") { return 403; }
        websockify_allow upstream:vnc_a;
        websockify_allow upstream:VNC_B;
        websockify_pass $vnc_target;
    }
--- ws_test
my @t = (mock_target(port => rand_port(1), banner => "aaa\n"),
         mock_target(port => rand_port(2), banner => "bbb\n"));
for my $d (qw(a b a)) {
    my $c = ws_connect(path => "/ws?desk=$d");
    is $c->{status}, 101, "$T: desk $d: 101";
    is $c->read_data(4, 5), "$d$d$d\n", "$T: desk $d: its server";
}
my $c = ws_connect(path => "/ws?desk=nope");
is $c->{status}, 403, "$T: unknown desk: 403";
my $api = ws_connect(path => "/ws?desk=api");
is $api->{status}, 403, "$T: a group without an upstream: rule: 403";
like error_log_text(), qr/target "internal_api" is not allowed/, "$T: group refusal logged";
my $d = ws_connect(path => "/ws?desk=direct");
is $d->{status}, 403, "$T: a bare address needs a websockify_allow rule";
like error_log_text(), qr/target "127\.0\.0\.1:\d+" is not allowed/, "$T: logged";
is $t[0]->connections, 2, "$T: server a: the two group sessions only";
is $t[1]->connections, 1, "$T: server b: desk b only, never through internal_api";



=== TEST 6: $upstream_response_time, $upstream_bytes_received and $upstream_bytes_sent of a session
The bytes read from and written to the target connection, as proxy_pass counts them; the
response time runs from the connect to the end of the session.
--- http_config
    log_format bytes '$request_uri|$status|$upstream_bytes_received|$upstream_bytes_sent|$upstream_response_time';
--- config
    access_log logs/ws.log bytes;
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: the banner";
$c->send(ws_frame(payload => 'abcde'));
$c->send(ws_frame(payload => '0123456789'));
is $c->read_data(15, 5), 'abcde0123456789', "$T: echoed";
$c->send(ws_close_frame(1000));
ok $c->read_until_opcode(8, 5), "$T: close reply";
# as a browser does after the close handshake: the request (and its log line) ends with
# nginx's lingering close, at once rather than after lingering_timeout
$c->close;
ok wait_until(sub { access_log_text('ws.log') =~ m{^/ws}m }, 5), "$T: access log line written";
like access_log_text('ws.log'), qr{^/ws\|101\|27\|15\|\d+\.\d{3}$}m,
    "$T: 27 bytes from the target, 15 to it, a response time";
--- no_error_log
[error]
