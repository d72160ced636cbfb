# nginx-conf/lua-signed.conf (the original C module's access_by_lua recipe, included
# verbatim) with URLs from scripts/sign-url: a fresh signature connects; forged, expired,
# future-dated and missing ones get 403 and the target sees no connection. Needs Debian's
# nginx and libnginx-mod-http-lua; skipped otherwise.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
use Digest::MD5 ();
{ package WsTest::Run; WsRecipes->import; }

BEGIN {
    if (my $why = WsRecipes::lua_skip_reason()) {
        Test::More::plan(skip_all => $why);
    }
}

our $MainConfig = lua_main_config();
our $Config = <<'_EOC_';
    include $TEST_NGINX_REPO/nginx-conf/lua-signed.conf;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('main_config', $MainConfig) if !defined $block->main_config;
    $block->set_value('config', $Config) if !defined $block->config;
});

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a freshly signed URL connects (101, the target's banner arrives)
--- ws_test
my $port = vnc_port(1);
my $t = mock_target(port => $port, banner => "RFB 003.008\n", echo => 1);
my $url = sign_url('--key', 'CHANGE_ME_!!!!', '127.0.0.1', $port);
like $url, qr{^/websockify/\?t=\d+&sign=[0-9a-f]{32}&ip=127\.0\.0\.1&port=$port$},
    "$T: sign-url output";
my $c = ws_connect(path => $url);
is $c->{status}, 101, "$T: status";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'hello'));
is $c->read_data(5, 5), 'hello', "$T: echo through the target";
is $t->connections, 1, "$T: one connection at the target";

# the key from the environment, a signature made 20 s ago: still fine
{
    local $ENV{WEBSOCKIFY_KEY} = 'CHANGE_ME_!!!!';
    my $url2 = sign_url('--time', int(time()) - 20, '127.0.0.1', $port);
    my $c2 = ws_connect(path => $url2);
    is $c2->{status}, 101, "$T: key from WEBSOCKIFY_KEY, 20 s old";
    is $c2->read_data(12, 5), "RFB 003.008\n", "$T: banner (2)";
}
--- no_error_log
[error]



=== TEST 2: forged, expired, future and missing signatures -> 403, no connection
--- ws_test
my $port = vnc_port(1);
my $t = mock_target(port => $port, banner => "RFB 003.008\n");
my $now = time();
my $good = sign_url('--key', 'CHANGE_ME_!!!!', '127.0.0.1', $port);
my %bad = (
    'wrong key'        => sign_url('--key', 'not the key', '127.0.0.1', $port),
    'expired (31 s)'   => sign_url('--key', 'CHANGE_ME_!!!!', '--time', int($now) - 31,
                                   '127.0.0.1', $port),
    'expired (1 h)'    => sign_url('--key', 'CHANGE_ME_!!!!', '--time', int($now) - 3600,
                                   '127.0.0.1', $port),
    'future (+60 s)'   => sign_url('--key', 'CHANGE_ME_!!!!', '--time', int($now) + 60,
                                   '127.0.0.1', $port),
    'no query'         => '/websockify/',
    'no sign'          => do { (my $u = $good) =~ s/&sign=[0-9a-f]+//; $u },
    'no t'             => do { (my $u = $good) =~ s/t=\d+&//; $u },
    'sign flipped'     => do { (my $u = $good) =~ s/sign=(.)/'sign=' . ($1 eq '0' ? '1' : '0')/e; $u },
    'port changed'     => do { my $p = $port == 5999 ? 5998 : 5999;
                               (my $u = $good) =~ s/port=\d+/port=$p/; $u },
    'ip changed'       => do { (my $u = $good) =~ s/ip=127\.0\.0\.1/ip=127.0.0.2/; $u },
);
for my $what (sort keys %bad) {
    my $c = ws_connect(path => $bad{$what});
    is $c->{status}, 403, "$T: $what -> 403";
}
sleep 0.2;
is $t->connections, 0, "$T: the target saw no connection";
# and the good one still works
my $c = ws_connect(path => $good);
is $c->{status}, 101, "$T: the genuine URL -> 101";
--- no_error_log
[error]



=== TEST 3: a correctly signed target outside the websockify_allow rule -> 403
--- ws_test
my $port = free_port(20000, 60000);
my $t = mock_target(port => $port, banner => "RFB 003.008\n");
my $url = sign_url('--key', 'CHANGE_ME_!!!!', '127.0.0.1', $port);
my $c = ws_connect(path => $url);
is $c->{status}, 403, "$T: status";
sleep 0.2;
is $t->connections, 0, "$T: the target saw no connection";
like error_log_text(), log_line(error => qq{websockify: target "127.0.0.1:$port" is not allowed}),
    "$T: error_log names the target";
--- no_error_log
[crit]
[alert]



=== TEST 4: sign-url computes vnc_url.php's md5 scheme and encodes like http_build_query
--- ws_test
my $url = sign_url('--key', 'CHANGE_ME_!!!!', '--time', 1000, '127.0.0.1', 5900);
# md5("CHANGE_ME_!!!!" . 1000 . "127.0.0.1:5900" . "CHANGE_ME_!!!!")
is $url, '/websockify/?t=1000&sign=016d552bf130f7790953e49c869ef24d&ip=127.0.0.1&port=5900',
    "$T: known answer";
is sign_url('--key', 'k', '--time', 5, '--base', '/vnc/ws', '[::1]'),
    '/vnc/ws?t=5&sign=' . Digest::MD5::md5_hex('k5[::1]:5900k') . '&ip=%5B%3A%3A1%5D&port=5900',
    "$T: default port, --base, percent-encoding";
my $rc = system("$ENV{TEST_NGINX_REPO}/scripts/sign-url 127.0.0.1 >/dev/null 2>&1");
isnt $rc, 0, "$T: no key -> failure";
--- no_error_log
[error]
