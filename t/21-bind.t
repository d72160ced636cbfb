# websockify_bind: the source address of the connection to the target, as proxy_bind
# (a fixed address, variables, off, transparent). 127.0.0.0/8 is all on the loopback, so
# 127.0.0.2 and 127.0.0.3 are local addresses the mock target sees as the peer.
use lib 't/lib';
use Test::Nginx::Socket;
use Socket qw(IPPROTO_IP);
use WsTest;

# IP_TRANSPARENT needs CAP_NET_ADMIN (or root) in the worker.
our $SkipTransparent = do {
    my $s = IO::Socket::INET->new(Proto => 'tcp');
    # IP_TRANSPARENT is 19 on Linux
    ($^O eq 'linux' && $s && setsockopt($s, IPPROTO_IP, 19, 1))
        ? undef : "IP_TRANSPARENT is not permitted here ($!)";
};

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a fixed source address
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_bind 127.0.0.2;
    }
    location /default { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
ok wait_until(sub { defined $t->peer(1) }, 5), "$T: connected";
like $t->peer(1), qr/^127\.0\.0\.2 \d+$/, "$T: the target sees 127.0.0.2";
$c = ws_connect(path => '/default');
ok wait_until(sub { defined $t->peer(2) }, 5), "$T: connected again";
like $t->peer(2), qr/^127\.0\.0\.1 \d+$/, "$T: without websockify_bind: the default address";
--- no_error_log
[error]



=== TEST 2: variables; inherited from the server level; off below
--- http_config
    map $arg_from $source {
        default 127.0.0.2;
        three   127.0.0.3;
        none    "";
        bad     not-an-address;
    }
--- config
    websockify_bind $source;
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        location /ws/off { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; websockify_bind off; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $i = 0;
for (['/ws', '127.0.0.2'], ['/ws?from=three', '127.0.0.3'], ['/ws?from=none', '127.0.0.1'],
     ['/ws/off?from=three', '127.0.0.1'], ['/ws?from=bad', '127.0.0.1'])
{
    my ($path, $want) = @$_;
    my $c = ws_connect(path => $path);
    is $c->{status}, 101, "$T: $path: 101";
    $i++;
    ok wait_until(sub { defined $t->peer($i) }, 5), "$T: $path: connected";
    like $t->peer($i), qr/^\Q$want\E \d+$/, "$T: $path: from $want";
}
my @errors = grep { /\[error\]/ } split /\n/, error_log_text();
is scalar(@errors), 1, "$T: one error line";
like $errors[0], qr/websockify: invalid local address "not-an-address"/, "$T: the bad value logged";



=== TEST 3: a source address the system does not have: 502
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_bind 192.0.2.1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = ws_connect();
is $c->{status}, 500, "$T: 500, a local failure";
like error_log_text(), qr/\[crit\].*bind\(192\.0\.2\.1\) failed/, "$T: nginx names the address";
--- error_log
[crit]



=== TEST 4: transparent
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_bind 127.0.0.2 transparent;
    }
--- ws_test
SKIP: {
skip $main::SkipTransparent, 2 if $main::SkipTransparent;
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 (IP_TRANSPARENT set)";
ok wait_until(sub { defined $t->peer(1) }, 5) && $t->peer(1) =~ /^127\.0\.0\.2 /, "$T: from 127.0.0.2";
}



=== TEST 5: websockify_bind: an invalid address
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_bind 999.1.1.1; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid address "999\.1\.1\.1"/



=== TEST 6: websockify_bind: an unknown parameter
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_bind 127.0.0.2 opaque; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "opaque"/
