# nginx-conf/secure-link.conf: signed, expiring URLs with nginx's secure_link module (no
# lua). URLs from scripts/sign-url --secure-link: valid -> 101; bad md5, edited target,
# expired, missing parts -> 403 and no connection; a signed target outside the allow
# rules -> 403 from websockify_allow.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
use Digest::MD5 ();
{ package WsTest::Run; WsRecipes->import; }

BEGIN {
    if (my $why = WsRecipes::nginx_module_skip_reason('secure_link')) {
        Test::More::plan(skip_all => $why);
    }
}

our $Recipe = recipe('secure-link.conf',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;');

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $Recipe) if !defined $block->http_config;
});

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a valid link connects; sign-url matches nginx's secure_link_md5
--- ws_test
my $port = vnc_port(1);
my $t = mock_target(port => $port, banner => "RFB 003.008\n", echo => 1);
my $url = sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET', '127.0.0.1', $port);
my ($exp) = $url =~ /expires=(\d+)/;
(my $md5 = Digest::MD5::md5_base64("$exp/websockify127.0.0.1:$port CHANGE_ME_SECRET")) =~ tr{+/}{-_};
is $url, "/websockify?vnc=127.0.0.1:$port&expires=$exp&md5=$md5", "$T: sign-url output";
ok $exp > time && $exp <= time + 61, "$T: expires in a minute by default";
my $c = ws_connect(port => rand_port(3), path => $url);
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'hi'));
is $c->read_data(2, 5), 'hi', "$T: echo";
# the key from the environment, an explicit expiry
{
    local $ENV{WEBSOCKIFY_KEY} = 'CHANGE_ME_SECRET';
    my $u = sign_url('--secure-link', '--expires', int(time) + 5, '127.0.0.1', $port);
    my $c2 = ws_connect(port => rand_port(3), path => $u);
    is $c2->{status}, 101, "$T: WEBSOCKIFY_KEY, --expires: 101";
}
--- no_error_log
[error]



=== TEST 2: bad md5, edited target, wrong key, expired, missing parts -> 403, no connection
--- ws_test
my ($p1, $p2) = (vnc_port(1), vnc_port(2));
my $t1 = mock_target(port => $p1, banner => "one\n");
my $t2 = mock_target(port => $p2, banner => "two\n");
my $good = sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET', '127.0.0.1', $p1);
my %bad = (
    'wrong key'      => sign_url('--secure-link', '--key', 'other', '127.0.0.1', $p1),
    'expired'        => sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET',
                                 '--expires', int(time) - 1, '127.0.0.1', $p1),
    'other path'     => sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET',
                                 '--base', '/elsewhere', '127.0.0.1', $p1)
                        =~ s{^/elsewhere}{/websockify}r,
    'md5 flipped'    => $good =~ s/md5=(.)/'md5=' . ($1 eq 'A' ? 'B' : 'A')/er,
    'target edited'  => $good =~ s/vnc=127\.0\.0\.1:$p1/vnc=127.0.0.1:$p2/r,
    'expiry edited'  => $good =~ s/expires=(\d+)/'expires=' . ($1 + 3600)/er,
    'no md5'         => $good =~ s/&md5=[^&]*//r,
    'no expires'     => $good =~ s/&expires=\d+//r,
    'no query'       => '/websockify',
    'only target'    => "/websockify?vnc=127.0.0.1:$p1",
);
for my $what (sort keys %bad) {
    my $c = ws_connect(port => rand_port(3), path => $bad{$what});
    is $c->{status}, 403, "$T: $what -> 403";
}
sleep 0.2;
is $t1->connections, 0, "$T: target one saw no connection";
is $t2->connections, 0, "$T: target two saw no connection";
my $c = ws_connect(port => rand_port(3), path => $good);
is $c->{status}, 101, "$T: the genuine link -> 101";
--- no_error_log
[error]



=== TEST 3: a link that expires while valid: 101 before, 403 after
--- ws_test
my $p = vnc_port(1);
my $t = mock_target(port => $p, banner => "one\n");
my $url = sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET', '--expires', int(time) + 1,
    '127.0.0.1', $p);
my $c = ws_connect(port => rand_port(3), path => $url);
is $c->{status}, 101, "$T: before expiry: 101";
my $exp = int(time) + 1;
sleep 0.1 while time < $exp + 1.1;
my $c2 = ws_connect(port => rand_port(3), path => $url);
is $c2->{status}, 403, "$T: after expiry: 403";
is $t->connections, 1, "$T: one session only";



=== TEST 4: a correctly signed target outside the websockify_allow rule -> 403 + error_log
--- ws_test
my $p = free_port();
my $t = mock_target(port => $p, banner => "x\n");
my $url = sign_url('--secure-link', '--key', 'CHANGE_ME_SECRET', '127.0.0.1', $p);
my $c = ws_connect(port => rand_port(3), path => $url);
is $c->{status}, 403, "$T: 403";
like error_log_text(), qr/websockify: target "127\.0\.0\.1:$p" is not allowed/,
    "$T: error_log names the target";
sleep 0.2;
is $t->connections, 0, "$T: no connection";
