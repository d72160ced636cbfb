# Token -> target without signatures.
# nginx-conf/token-map.conf: a token file through map (TokenFile-like).
# nginx-conf/token-redis.conf: a Redis lookup through lua (TokenRedis-like), against a
# real redis-server started here on 127.0.0.1 (stopped at the end); those blocks need
# Debian's nginx with libnginx-mod-http-lua, lua-nginx-redis and redis-server.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

our $MapRecipe = recipe('token-map.conf',
    '/etc/nginx/websockify-tokens.map' => '$TEST_NGINX_SERVER_ROOT/html/tokens.map',
    'unix:/run/vnc/' => 'unix:$TEST_NGINX_WS_TMP/vnc/',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;');

our $CookieRecipe = recipe('token-cookie.conf',
    '/etc/nginx/websockify-tokens.map' => '$TEST_NGINX_SERVER_ROOT/html/tokens.map',
    '/var/log/nginx/websockify.log' => 'logs/cookie.log',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;');

our $REDIS_SKIP = lua_skip_reason() // redis_skip_reason()
    // (-f '/usr/share/lua/5.1/nginx/redis.lua' || -f '/usr/share/lua/5.1/resty/redis.lua'
        ? undef : 'no lua redis library (apt install lua-nginx-redis)');
our $RedisRecipe = '';
if (!$REDIS_SKIP) {
    my $port = redis_start();
    $RedisRecipe = recipe('token-redis.conf',
        'red:connect("127.0.0.1", 6379)' => qq{red:connect("127.0.0.1", $port)},
        'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3;');
}
our $LuaMain = $REDIS_SKIP ? '' : lua_main_config();

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: token file: known tokens reach their targets (tcp and unix)
--- http_config eval: $main::MapRecipe
--- user_files
>>> tokens.map
# token                              target
3f9c0a7e1b2d4c5e8f60718293a4b5c6     127.0.0.1:$TEST_NGINX_VNC_PORT_1;
desk2                                127.0.0.1:$TEST_NGINX_VNC_PORT_2;
desk7                                unix:$TEST_NGINX_WS_TMP/vnc/desk7.sock;
--- ws_test
mkdir ws_tmp() . "/vnc";
my @t = (mock_target(port => vnc_port(1), banner => "one\n"),
         mock_target(port => vnc_port(2), banner => "two\n"),
         mock_target(unix => ws_tmp() . "/vnc/desk7.sock", banner => "sev\n"));
my %want = ('3f9c0a7e1b2d4c5e8f60718293a4b5c6' => "one\n", desk2 => "two\n",
    desk7 => "sev\n", DESK2 => "two\n");
for my $tok (sort keys %want) {
    my $c = ws_connect(port => rand_port(3), path => "/websockify?token=$tok");
    is $c->{status}, 101, "$T: $tok: 101";
    is $c->read_data(4, 5), $want{$tok}, "$T: $tok: its target";
}
--- no_error_log
[error]



=== TEST 2: token file: unknown, missing, empty tokens -> 403; a line pointing outside the allow rules -> 403
--- http_config eval: $main::MapRecipe
--- user_files
>>> tokens.map
good     127.0.0.1:$TEST_NGINX_VNC_PORT_1;
stray    127.0.0.1:$TEST_NGINX_RAND_PORT_1;
--- ws_test
my $t = mock_target(port => vnc_port(1), banner => "one\n");
my $stray = mock_target(port => rand_port(1), banner => "stray\n");
for my $q ('?token=bad', '?token=goo', '?token=good2', '', '?token=', '?tok=good') {
    my $c = ws_connect(port => rand_port(3), path => "/websockify$q");
    is $c->{status}, 403, "$T: '$q' -> 403";
}
my $c = ws_connect(port => rand_port(3), path => "/websockify?token=stray");
is $c->{status}, 403, "$T: stray line -> 403";
my $p = rand_port(1);
like error_log_text(), log_line(error => qq{websockify: target "127.0.0.1:$p" is not allowed}),
    "$T: error_log names the refused target";
sleep 0.2;
is $t->connections, 0, "$T: the good target saw nothing";
is $stray->connections, 0, "$T: the stray target saw nothing";
my $ok = ws_connect(port => rand_port(3), path => "/websockify?token=good");
is $ok->{status}, 101, "$T: good token still works";
--- no_error_log
[crit]
[alert]



=== TEST 3: Redis: a stored token reaches its target; added, expired, deleted without reload
--- skip_eval: 1: $main::REDIS_SKIP
--- main_config eval: $main::LuaMain
--- http_config eval: $main::RedisRecipe
--- ws_test
my $t1 = mock_target(port => vnc_port(1), banner => "one\n");
my $t2 = mock_target(port => vnc_port(2), banner => "two\n");
redis_cmd('SET', 'token:abc', '127.0.0.1:' . vnc_port(1));
my $c = ws_connect(port => rand_port(3), path => '/websockify?token=abc');
is $c->{status}, 101, "$T: abc: 101";
is $c->read_data(4, 5), "one\n", "$T: abc: its target";

# published after nginx started (another gateway's backend, say): used at once
redis_cmd('SET', 'token:late', '127.0.0.1:' . vnc_port(2), 'EX', '2');
$c = ws_connect(port => rand_port(3), path => '/websockify?token=late');
is $c->{status}, 101, "$T: late: 101";
is $c->read_data(4, 5), "two\n", "$T: late: its target";
# ... and gone when it expires
ok wait_until(sub { !defined redis_cmd('GET', 'token:late') }, 5), "$T: late expired in redis";
$c = ws_connect(port => rand_port(3), path => '/websockify?token=late');
is $c->{status}, 403, "$T: expired token -> 403";

# revoked
redis_cmd('DEL', 'token:abc');
$c = ws_connect(port => rand_port(3), path => '/websockify?token=abc');
is $c->{status}, 403, "$T: deleted token -> 403";
is $t1->connections, 1, "$T: target one: one session";
is $t2->connections, 1, "$T: target two: one session";
--- no_error_log
[error]



=== TEST 3b: Redis: a session lasts no longer than its token (close 4001 when the TTL runs out)
--- skip_eval: 1: $main::REDIS_SKIP
--- main_config eval: $main::LuaMain
--- http_config eval: $main::RedisRecipe
--- ws_test
my $t = mock_target(port => vnc_port(1), banner => "one\n", echo => 1);
redis_cmd('SET', 'token:short', '127.0.0.1:' . vnc_port(1), 'PX', '2000');
my $t0 = time;
my $c = ws_connect(port => rand_port(3), path => '/websockify?token=short');
is $c->{status}, 101, "$T: 101";
is $c->read_data(4, 5), "one\n", "$T: its target";
my $f;
while (time - $t0 < 6) {
    $c->send(ws_frame(payload => 'busy'));
    $f = $c->read_frame(0.2) or next;
    last if $f->{opcode} == 8;
}
my $dt = time - $t0;
is $f && $f->{code}, 4001, "$T: close 4001";
cmp_ok $dt, '>=', 1.8, "$T: not before the token's end ($dt s)";
cmp_ok $dt, '<', 5, "$T: when the token ends ($dt s)";
redis_cmd('SET', 'token:forever', '127.0.0.1:' . vnc_port(1));
$c = ws_connect(port => rand_port(3), path => '/websockify?token=forever');
is $c->{status}, 101, "$T: a token without expiry";
$c->read_data(4, 5);
$c->send(ws_frame(payload => 'x'));
is $c->read_data(1, 3), 'x', "$T: its session is not cut";
--- no_error_log
[error]

=== TEST 4: Redis: unknown, missing, malformed tokens and entries outside the allow rules -> 403
--- skip_eval: 1: $main::REDIS_SKIP
--- main_config eval: $main::LuaMain
--- http_config eval: $main::RedisRecipe
--- ws_test
my $p = free_port();
my $t = mock_target(port => vnc_port(1), banner => "one\n");
my $stray = mock_target(port => $p, banner => "stray\n");
redis_cmd('SET', 'token:good', '127.0.0.1:' . vnc_port(1));
redis_cmd('SET', 'token:stray', "127.0.0.1:$p");
for my $q ('?token=nope', '', '?token=', '?token=a%20b', '?token=' . ('x' x 200),
           '?token=good*') {
    my $c = ws_connect(port => rand_port(3), path => "/websockify$q");
    is $c->{status}, 403, "$T: '" . substr($q, 0, 20) . "' -> 403";
}
my $c = ws_connect(port => rand_port(3), path => '/websockify?token=stray');
is $c->{status}, 403, "$T: entry outside the rules -> 403";
like error_log_text(), log_line(error => qq{websockify: target "127.0.0.1:$p" is not allowed}),
    "$T: error_log names it";
sleep 0.2;
is $t->connections, 0, "$T: the good target saw nothing";
is $stray->connections, 0, "$T: the stray target saw nothing";
--- no_error_log
[crit]
[alert]



=== TEST 4b: Redis: a value with the VNC password after the address: the gateway logs in with it
--- skip_eval: 1: $main::REDIS_SKIP
--- main_config eval: $main::LuaMain
--- http_config eval: $main::RedisRecipe
--- ws_test
my $t = mock_target(port => vnc_port(1), rfb => { types => [2], password => 'from-redis' });
redis_cmd('SET', 'token:login', '127.0.0.1:' . vnc_port(1) . ' from-redis');
my $c = ws_connect(port => rand_port(3), path => '/websockify-login?token=login');
is $c->{status}, 101, "$T: 101";
like $t->rfb, qr/auth ok/, "$T: the server took the password from Redis";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: the browser is greeted by the gateway";
$c->send(ws_frame(payload => "RFB 003.008\n"));
is unpack('H*', $c->read_data(2, 5)), '0101', "$T: None only";
$c->close;
# Without a password in the value, the gateway fails closed; /websockify is a plain relay.
redis_cmd('SET', 'token:nopw', '127.0.0.1:' . vnc_port(1));
$c = ws_connect(port => rand_port(3), path => '/websockify-login?token=nopw');
is $c->{status}, 502, "$T: no password: 502";
unlike error_log_text(), qr/from-redis/, "$T: the password is in no log";
--- error_log eval
qr/cannot log in to VNC server "[^"]+": no allowed security type/



=== TEST 5: Redis down -> 503 with an error_log line, no connection
--- skip_eval: 1: $main::REDIS_SKIP
--- main_config eval: $main::LuaMain
--- http_config eval: $main::RedisRecipe
--- ws_test
my $t = mock_target(port => vnc_port(1), banner => "one\n");
redis_cmd('SET', 'token:good', '127.0.0.1:' . vnc_port(1));
redis_stop();
my $c = ws_connect(port => rand_port(3), path => '/websockify?token=good');
is $c->{status}, 503, "$T: 503";
like error_log_text(), qr/\[error\].*websockify tokens: redis connect: connection refused/,
    "$T: error_log";
sleep 0.2;
is $t->connections, 0, "$T: no connection";

=== TEST 6: cookie: the token comes in a cookie, and the access log records no token
--- http_config eval: $main::CookieRecipe
--- user_files
>>> tokens.map
3f9c0a7e1b2d4c5e8f60718293a4b5c6     127.0.0.1:$TEST_NGINX_VNC_PORT_1;
--- ws_test
my $tok = '3f9c0a7e1b2d4c5e8f60718293a4b5c6';
my $t = mock_target(port => vnc_port(1), banner => "one\n");
my $c = ws_connect(port => rand_port(3), path => '/websockify',
    headers => { Cookie => "theme=dark; vnc_token=$tok" });
is $c->{status}, 101, "$T: 101 with the cookie";
is $c->read_data(4, 5), "one\n", "$T: its target";
$c->send(ws_close_frame(1000));
$c->read_until_opcode(8, 5);
$c->close;
for my $bad ("vnc_token=nope", undef) {
    my $r = ws_connect(port => rand_port(3), path => "/websockify?vnc_token=$tok",
        headers => { Cookie => $bad });
    is $r->{status}, 403, "$T: " . ($bad // 'no cookie') . " (a token in the URL does not count) -> 403";
}
ok wait_until(sub { (() = access_log_text('cookie.log') =~ /\n/g) >= 3 }, 5), "$T: three log lines";
my $log = access_log_text('cookie.log');
like $log, qr{"GET /websockify" 101 target=127\.0\.0\.1:\d+ }, "$T: the session's line";
unlike $log, qr/$tok/, "$T: no token in the access log";
is $t->connections, 1, "$T: refused ones never reached the target";
