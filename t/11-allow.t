# websockify_allow: per-request targets are refused unless a rule allows them.
# IPv4 addresses and networks, port ranges at their edges, IPv6, unix paths (exact, a
# directory, ".."), host names resolved with `resolver` (a mock DNS server), name rules vs
# network rules, unresolvable names, no resolver, inheritance. Every refusal: 403, an
# error_log line naming the target, and no connection at the mock target.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

# four consecutive free ports: the rule allows the middle two
BEGIN {
    my $base;
    for (1 .. 200) {
        my $p = 20000 + 4 * int(rand(9000));
        next if grep { !WsRecipes::_port_free($_) } $p .. $p + 3;
        $base = $p;
        last;
    }
    die "no run of 4 free ports\n" if !$base;
    $ENV{"TEST_NGINX_EDGE_PORT_$_"} = $base + $_ for 0 .. 3;
}

our $IPV6_SKIP = ipv6_skip_reason();

# the refusal checks shared by the blocks (in the ws_test package)
package WsTest::Run {
    use Test::More;
    use Time::HiRes qw(time sleep);
    BEGIN { WsTest->import }

    sub refused {
        my ($path, $target, $mock, %o) = @_;
        my $before = length error_log_text();
        my $conns = $mock ? $mock->connections : 0;
        my $c = ws_connect(path => $path);
        is $c->{status}, $o{status} // 403, "$WsTest::T: $path -> " . ($o{status} // 403);
        my $log = substr(error_log_text(), $before);
        my $re = $o{log} // qr/\[error\].*websockify: target "\Q$target\E" is not allowed/;
        like $log, $re, "$WsTest::T: error_log names $target";
        unlike $log, qr/cannot connect to target/, "$WsTest::T: no connect attempt logged";
        if ($mock) {
            sleep 0.1;
            is $mock->connections, $conns, "$WsTest::T: the target at $target saw no connection";
        }
    }

    sub accepted {
        my ($path, $banner) = @_;
        my $c = ws_connect(path => $path);
        is $c->{status}, 101, "$WsTest::T: $path -> 101";
        is $c->read_data(length $banner, 5), $banner, "$WsTest::T: banner via $path";
    }
}
package main;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: no rule: per-request targets refused (with a hint), static targets trusted
--- config
    location /ws { websockify_pass $arg_to; }
    location /static { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $p = rand_port(1);
my $t = mock_target(port => $p, banner => "static\n");
refused("/ws?to=127.0.0.1:$p", "127.0.0.1:$p", $t,
    log => qr/websockify: target "127\.0\.0\.1:$p" is not allowed \(no websockify_allow rule: per-request targets are refused by default\)/);
accepted("/static", "static\n");
is $t->connections, 1, "$T: only the static location connected";



=== TEST 2: IPv4 address with a port range: the edges
--- config
    location /ws {
        websockify_allow 127.0.0.1 $TEST_NGINX_EDGE_PORT_1-$TEST_NGINX_EDGE_PORT_2;
        websockify_pass $arg_to;
    }
--- ws_test
my @p = map { $ENV{"TEST_NGINX_EDGE_PORT_$_"} } 0 .. 3;
my @t = map { mock_target(port => $p[$_], banner => "port $_\n") } 0 .. 3;
accepted("/ws?to=127.0.0.1:$p[1]", "port 1\n");
accepted("/ws?to=127.0.0.1:$p[2]", "port 2\n");
refused("/ws?to=127.0.0.1:$p[0]", "127.0.0.1:$p[0]", $t[0]);
refused("/ws?to=127.0.0.1:$p[3]", "127.0.0.1:$p[3]", $t[3]);
# only the exact address: 127.0.0.2 is another host
my $t2 = mock_target(addr => '127.0.0.2', port => $p[1], banner => "other\n");
refused("/ws?to=127.0.0.2:$p[1]", "127.0.0.2:$p[1]", $t2);
--- no_error_log
[crit]
[alert]



=== TEST 3: IPv4 network (CIDR) and a single port; the rest of 127/8 refused
--- config
    location /ws {
        websockify_allow 127.0.0.0/30 $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
--- ws_test
my $p = rand_port(1);
my $t1 = mock_target(port => $p, banner => "one\n");
my $t2 = mock_target(addr => '127.0.0.2', port => $p, banner => "two\n");
my $t5 = mock_target(addr => '127.0.0.5', port => $p, banner => "five\n");
accepted("/ws?to=127.0.0.1:$p", "one\n");
accepted("/ws?to=127.0.0.2:$p", "two\n");
refused("/ws?to=127.0.0.5:$p", "127.0.0.5:$p", $t5);
my $q = free_port();
my $tq = mock_target(port => $q, banner => "q\n");
refused("/ws?to=127.0.0.1:$q", "127.0.0.1:$q", $tq);



=== TEST 4: IPv6 loopback: address rule, network rule, v4 rules do not match ::1
--- skip_eval: 8: $main::IPV6_SKIP
--- config
    location /v6 {
        websockify_allow ::1 $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
    location /v6net {
        websockify_allow ::/64;
        websockify_pass $arg_to;
    }
    location /v4only {
        websockify_allow 127.0.0.0/8;
        websockify_allow 0.0.0.0/0;
        websockify_pass $arg_to;
    }
--- ws_test
my $p = rand_port(1);
my $t = mock_target6(port => $p, banner => "six\n");
accepted("/v6?to=[::1]:$p", "six\n");
accepted("/v6net?to=[::1]:$p", "six\n");
my $q = free_port();
my $tq = mock_target6(port => $q, banner => "q\n");
refused("/v6?to=[::1]:$q", "[::1]:$q", $tq);
refused("/v4only?to=[::1]:$p", "[::1]:$p", undef);
is $t->connections, 2, "$T: two sessions reached [::1]:$p";



=== TEST 5: unix sockets: exact path, a directory, ".." and look-alike paths refused
--- config
    location /ws {
        websockify_allow unix:$TEST_NGINX_WS_TMP/one.sock;
        websockify_allow unix:$TEST_NGINX_WS_TMP/vnc/;
        websockify_pass $arg_to;
    }
--- ws_test
my $d = ws_tmp();
mkdir "$d/vnc";
my $one = mock_target(unix => "$d/one.sock", banner => "one\n");
my $in = mock_target(unix => "$d/vnc/a.sock", banner => "in dir\n");
my $two = mock_target(unix => "$d/two.sock", banner => "two\n");
my $look = mock_target(unix => "$d/vncx.sock", banner => "look-alike\n");
accepted("/ws?to=unix:$d/one.sock", "one\n");
accepted("/ws?to=unix:$d/vnc/a.sock", "in dir\n");
refused("/ws?to=unix:$d/two.sock", "unix:$d/two.sock", $two);
refused("/ws?to=unix:$d/vncx.sock", "unix:$d/vncx.sock", $look);
refused("/ws?to=unix:$d/vnc/../two.sock", "unix:$d/vnc/../two.sock", $two);
refused("/ws?to=unix:$d/vnc/../vnc/a.sock", "unix:$d/vnc/../vnc/a.sock", undef);
is $in->connections, 1, "$T: the socket in the directory: only the allowed session";
refused("/ws?to=unix:$d/vnc/", "unix:$d/vnc/", undef);
--- no_error_log
[crit]
[alert]



=== TEST 6: inheritance: a level's own rules replace the inherited ones; all = any TCP target
--- http_config
    websockify_allow 127.0.0.1 $TEST_NGINX_RAND_PORT_1;
--- config
    location /inherit { websockify_pass $arg_to; }
    location /own {
        websockify_allow 127.0.0.1 $TEST_NGINX_RAND_PORT_2;
        websockify_pass $arg_to;
    }
    location /all {
        websockify_allow all;
        websockify_pass $arg_to;
    }
--- ws_test
my ($p1, $p2) = (rand_port(1), rand_port(2));
my $t1 = mock_target(port => $p1, banner => "one\n");
my $t2 = mock_target(port => $p2, banner => "two\n");
accepted("/inherit?to=127.0.0.1:$p1", "one\n");
refused("/inherit?to=127.0.0.1:$p2", "127.0.0.1:$p2", undef);
accepted("/own?to=127.0.0.1:$p2", "two\n");
refused("/own?to=127.0.0.1:$p1", "127.0.0.1:$p1", undef);
accepted("/all?to=127.0.0.1:$p1", "one\n");
accepted("/all?to=127.0.0.1:$p2", "two\n");
# "all" means every TCP address; unix sockets need a unix: rule
my $u = mock_target(unix => ws_tmp() . "/all.sock", banner => "unix\n");
refused("/all?to=unix:" . ws_tmp() . "/all.sock", "unix:" . ws_tmp() . "/all.sock", $u);
is $t1->connections, 2, "$T: target one: the two allowed sessions only";
is $t2->connections, 2, "$T: target two: the two allowed sessions only";



=== TEST 7: host names through the resolver: name rules match the name, not the address
--- config
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off valid=1s;
    resolver_timeout 3s;
    location /name {
        websockify_allow vnc.test;
        websockify_allow ports.test $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
    location /net {
        websockify_allow 127.0.0.0/8 $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
    location /host {
        # a host name from a variable plus a literal port
        set $vnc_host $arg_vm.test;
        websockify_allow vnc.test $TEST_NGINX_RAND_PORT_1;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my ($p, $q) = (rand_port(1), free_port());
my $dns = mock_dns(port => rand_port(9), a => {
    'vnc.test' => ['127.0.0.1'], 'other.test' => ['127.0.0.1'],
    'ports.test' => ['127.0.0.1'], 'far.test' => ['127.0.0.9'] });
my $t = mock_target(port => $p, banner => "vnc\n");
my $tq = mock_target(port => $q, banner => "q\n");
my $far = mock_target(addr => '127.0.0.9', port => $p, banner => "far\n");

# name rules
accepted("/name?to=vnc.test:$p", "vnc\n");
accepted("/name?to=VNC.Test:$p", "vnc\n");
accepted("/name?to=vnc.test:$q", "q\n");
accepted("/name?to=ports.test:$p", "vnc\n");
refused("/name?to=ports.test:$q", "ports.test:$q", $tq);
# same address, but the name is not listed; nor is the bare address
refused("/name?to=other.test:$p", "other.test:$p", undef);
refused("/name?to=127.0.0.1:$p", "127.0.0.1:$p", undef);

# network rules are matched against the resolved addresses
accepted("/net?to=other.test:$p", "vnc\n");
accepted("/net?to=far.test:$p", "far\n");
refused("/net?to=other.test:$q", "other.test:$q", $tq);

# $vnc_host:port
accepted("/host?vm=vnc", "vnc\n");
refused("/host?vm=other", "other.test:$p", undef);

my %asked = map { $_ => 1 } $dns->queries;
ok $asked{'vnc.test'} && $asked{'other.test'}, "$T: names were asked of the mock DNS server";
is $tq->connections, 1, "$T: target q: only the allowed session";
--- no_error_log
[crit]
[alert]



=== TEST 8: network rules are checked against every resolved address
--- config
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off valid=1s;
    location /ws {
        websockify_allow 127.0.0.1/32 $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
--- ws_test
my $p = rand_port(1);
my $dns = mock_dns(port => rand_port(9), a => { 'far.test' => ['127.0.0.9'],
    'two.test' => ['127.0.0.9', '127.0.0.1'] });
my $t = mock_target(port => $p, banner => "near\n");
my $far = mock_target(addr => '127.0.0.9', port => $p, banner => "far\n");
# the name resolves outside 127.0.0.1/32: refused before any connect
refused("/ws?to=far.test:$p", "far.test:$p", $far);
# of two addresses only the allowed one is used
accepted("/ws?to=two.test:$p", "near\n") for 1 .. 3;
is $far->connections, 0, "$T: the disallowed address was never tried";



=== TEST 9: an unresolvable name -> 502; no resolver -> 502; neither connects
--- config
    location /ws {
        resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off valid=1s;
        resolver_timeout 3s;
        websockify_allow all;
        websockify_pass $arg_to;
    }
    location /nores {
        websockify_allow all;
        websockify_pass $arg_to;
    }
--- ws_test
my $p = free_port();
my $dns = mock_dns(port => rand_port(9), a => { 'vnc.test' => ['127.0.0.1'] });
my $t = mock_target(port => $p, banner => "vnc\n");
accepted("/ws?to=vnc.test:$p", "vnc\n");
refused("/ws?to=nx.test:$p", "nx.test:$p", undef, status => 502,
    log => qr/\[error\].*websockify: target "nx\.test:$p" could not be resolved \(3: Host not found\)/);
refused("/nores?to=vnc.test:$p", "vnc.test:$p", undef, status => 502,
    log => qr/\[error\].*websockify: no resolver defined to resolve target "vnc\.test:$p"/);
is $t->connections, 1, "$T: only the resolved, allowed session connected";



=== TEST 10: nginx listening on [::1] serves the same locations
--- skip_eval: 2: $main::IPV6_SKIP
--- config
    listen [::1]:$TEST_NGINX_RAND_PORT_2;
    location /ws {
        websockify_allow 127.0.0.1 $TEST_NGINX_RAND_PORT_1;
        websockify_pass $arg_to;
    }
--- ws_test
my $p = rand_port(1);
my $t = mock_target(port => $p, banner => "over v6\n");
my $s = IO::Socket::IP->new(PeerHost => '::1', PeerPort => rand_port(2), Timeout => 5)
    or die "connect [::1]: $@";
print $s ws_request(path => "/ws?to=127.0.0.1:$p");
my $buf = '';
my $deadline = time + 5;
while ($buf !~ /RFB|over v6/ && time < $deadline) {
    my $n = sysread($s, $buf, 4096, length $buf) or last;
}
like $buf, qr{^HTTP/1\.1 101 }, "$T: 101 over IPv6";
like $buf, qr/over v6/, "$T: banner over IPv6";
