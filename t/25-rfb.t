# The RFB security proxy (websockify_rfb_*): the gateway logs in to a scripted VNC server
# (t/lib's mock target with rfb => {...}) before the 101, then speaks the server half of
# the handshake to the browser, security type None only. The browser here is the test.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
use WsTls;
{ package WsTest::Run; WsRecipes->import; }

BEGIN { make_pki() }

our $Recipe = recipe('rfb-password.conf',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;',
    '127.0.0.1:5921' => '127.0.0.1:$TEST_NGINX_RAND_PORT_1',
    '/etc/nginx/vnc-ca.crt' => '$TEST_NGINX_PKI_CA');

# The browser's side: the gateway's version, None, OK; then ClientInit, ServerInit.
sub WsTest::Run::rfb_browser {
    my ($c, %o) = @_;
    my $T = $WsTest::T;
    Test::More::is($c->read_data(12, 5), "RFB 003.008\n", "$T: the gateway speaks 3.8");
    $c->send(ws_frame(payload => "RFB 003.008\n"));
    Test::More::is(unpack('H*', $c->read_data(2, 5)), '0101', "$T: one type, None");
    $c->send(ws_frame(payload => "\x01"));
    Test::More::is(unpack('H*', $c->read_data(4, 5)), '00000000', "$T: SecurityResult OK");
    $c->send(ws_frame(payload => chr($o{shared} // 0)));
    my $init = $c->read_data(24 + length($o{desktop} // 'scripted'), 5);
    Test::More::is(substr($init, 24), $o{desktop} // 'scripted', "$T: ServerInit reaches the browser");
}

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: VncAuth with the server, None with the browser; the password goes nowhere else
--- http_config
    log_format rfb '$status|$websockify_rfb_security|$websockify_rfb_desktop|$websockify_bytes_from_client';
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password "s3cret-pw";
        access_log logs/rfb.log rfb;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), echo => 1,
    rfb => { types => [1, 2, 16], password => 's3cret-pw', desktop => 'lab desk' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 after the login";
like $t->rfb, qr/^version RFB 003\.008\nchose 2\nauth ok\n/, "$T: the gateway chose VncAuth, its response is right";
rfb_browser($c, desktop => 'lab desk');
wait_until { $t->rfb =~ /shared/ } 5;
like $t->rfb, qr/shared 0\n$/, "$T: ClientInit passed as the browser sent it";
$c->send(ws_frame(payload => "\x03\x00\x00\x00\x00\x00\x03\x20\x02\x58"));
is unpack('H*', $t->wait_data(10, 5)), '03000000000003200258', "$T: then bytes pass unchanged";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
$c->close;   # nginx writes the access log line once its lingering close ends
my $log = wait_until(sub { my $l = access_log_text('rfb.log'); $l =~ /\n/ ? $l : undef }, 5) // '';
is $log, "101|vnc|lab desk|11\n", "$T: the variables";
unlike error_log_text() . $log, qr/s3cret/, "$T: the password is in no log";
--- no_error_log
[error]



=== TEST 2: a wrong password is a 502 before any 101, with one line naming the type and the reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password wrong;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2], password => 'right' });
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
like $t->rfb, qr/auth bad/, "$T: the server refused the response";
--- error_log eval
qr/\[error\] .*websockify: cannot log in to VNC server "127\.0\.0\.1:\d+": authentication failed with security type vnc: "Authentication failed" while logging in to the VNC server, client/



=== TEST 3: nothing allowed: the server wants a password the request does not have
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password "";
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2, 16] });
my $c = ws_connect();
is $c->{status}, 502, "$T: 502, no fallback to the server's own types";
--- error_log eval
qr/\[error\] .*cannot log in to VNC server "[^"]+": no allowed security type: the VNC server offered security types vnc, tight/



=== TEST 4: view-only: input never reaches the server, the desktop is shared
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_view_only on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [1] });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
like $t->rfb, qr/chose 1\n/, "$T: None with the server, no password needed";
rfb_browser($c, shared => 0);
wait_until { $t->rfb =~ /shared/ } 5;
like $t->rfb, qr/shared 1\n$/, "$T: ClientInit says shared";
my $key = "\x04\x01\x00\x00\x00\x00\x00\x61";
my $pointer = "\x05\x01\x00\x10\x00\x10";
my $fbur = "\x03\x01\x00\x00\x00\x00\x03\x20\x02\x58";
# A pointer event split across frames, then a request the server must get.
$c->send(ws_frame(payload => $key . substr($pointer, 0, 2)));
$c->send(ws_frame(payload => substr($pointer, 2) . $fbur));
is unpack('H*', $t->wait_data(10, 5)), unpack('H*', $fbur), "$T: only the update request arrived";
--- no_error_log
[error]



=== TEST 5: view-only from a variable, and an unknown message ends the session with 1008
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_view_only $arg_view;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [1] });
my $c = ws_connect(path => '/ws?view=on');
is $c->{status}, 101, "$T: 101";
rfb_browser($c);
$c->send(ws_frame(payload => "\x07\x00"));
close_ok($c, 1008, 'unknown message type');
--- error_log eval
qr/\[info\] .*websockify: closing with 1008: the client sent RFB message type 7, unknown to the view-only filter/



=== TEST 6: a 3.3 server: it decides the type
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { version => '003.003', types => [2], password => 'pw' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
like $t->rfb, qr/^version RFB 003\.003\nchose 2\nauth ok\n/, "$T: the gateway answered 3.3";
rfb_browser($c);
--- no_error_log
[error]



=== TEST 7: a target that speaks no RFB is a 502
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { banner => "SSH-2.0-OpenSSH_9.2\r\n" });
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*cannot log in to VNC server "[^"]+": the target does not speak RFB/



=== TEST 8: a server that stalls in the handshake: 504 after websockify_connect_timeout
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
        websockify_connect_timeout 1s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { stall => 1 });
my $c = ws_connect();
is $c->{status}, 504, "$T: 504";
--- error_log eval
qr/\[error\] .*cannot connect to target "[^"]+": timed out during the RFB handshake/



=== TEST 9: a browser that asks for VncAuth is told None only, then closed with 1008
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2], password => 'pw' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: version";
$c->send(ws_frame(payload => "RFB 003.008\n"));
is unpack('H*', $c->read_data(2, 5)), '0101', "$T: None offered";
$c->send(ws_frame(payload => "\x02"));
my $reason = 'the gateway offers security type None only';
is $c->read_data(8 + length $reason, 5), pack('N N/a*', 1, $reason), "$T: RFB failure with its reason";
close_ok($c, 1008, 'refused type');
--- error_log eval
qr/\[info\] .*closing with 1008: the client asked for RFB security type 2, the gateway offers None only/



=== TEST 10: an upstream group: a server that refuses the login passes the session to the next
--- http_config
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /ws {
        websockify_pass vnc;
        websockify_rfb_password pw;
    }
--- ws_test
my $bad = mock_target(port => rand_port(1), rfb => { types => [2], password => 'other' });
my $good = mock_target(port => rand_port(2), rfb => { types => [2], password => 'pw' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 from the second server";
rfb_browser($c);
--- error_log eval
qr/cannot log in to VNC server "127\.0\.0\.1:\d+": authentication failed/



=== TEST 11: the security list is checked when nginx reads the configuration
--- config
    location /ws {
        websockify_pass 127.0.0.1:5901;
        websockify_rfb_security x509vnc vnc md5;
    }
--- must_die
--- error_log
invalid value "md5" in "websockify_rfb_security" directive, it must be one of: x509plain x509vnc x509none tlsplain tlsvnc tlsnone plain vnc none




=== TEST 12: nginx-conf/rfb-password.conf: the token's password, none for an unknown token, view-only
--- http_config eval: $::Recipe
--- config
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2], password => 'change-me' });
my $c = ws_connect(port => rand_port(2), path => '/websockify?token=desk1');
is $c->{status}, 101, "$T: the token's password";
rfb_browser($c);
$c->close;
$c = ws_connect(port => rand_port(2), path => '/websockify?token=nope');
is $c->{status}, 502, "$T: an unknown token has no password: 502";
$c = ws_connect(port => rand_port(2), path => '/websockify-view?token=desk1');
is $c->{status}, 101, "$T: view-only";
rfb_browser($c);
wait_until { ($t->rfb(3) // '') =~ /shared/ } 5;
like $t->rfb(3), qr/shared 1\n$/, "$T: the view-only session shares the desktop";
--- error_log eval
qr/cannot log in to VNC server "[^"]+": no allowed security type: the VNC server offered security types vnc/



=== TEST 13: the directives are inherited from the server level, and a location may turn view-only off again
--- config
    websockify_rfb_password pw;
    websockify_rfb_view_only on;
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
    location /ws-input {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_view_only off;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { types => [2], password => 'pw' });
my $c = ws_connect(path => '/ws');
is $c->{status}, 101, "$T: the server-level password";
rfb_browser($c);
wait_until { ($t->rfb(1) // '') =~ /shared/ } 5;
like $t->rfb(1), qr/shared 1\n$/, "$T: inherited view-only";
$c->close;
$c = ws_connect(path => '/ws-input');
is $c->{status}, 101, "$T: 101";
rfb_browser($c);
wait_until { ($t->rfb(2) // '') =~ /shared/ } 5;
like $t->rfb(2), qr/shared 0\n$/, "$T: view-only off here";
--- no_error_log
[error]



=== TEST 14: a 3.7 server: its types, no SecurityResult after None
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_view_only on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { version => '003.007', types => [1] });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
rfb_browser($c);
like $t->rfb, qr/^version RFB 003\.007\nchose 1\nshared 1\n/, "$T: the gateway answered 3.7 and chose None";
--- no_error_log
[error]



=== TEST 15: a server that hangs up in the middle of the handshake: 502 with its line
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password pw;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), rfb => { banner => "RFB 003.008\n\x02\x02" });
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*cannot log in to VNC server "[^"]+": (the VNC server closed the connection during the RFB handshake|reading from the VNC server failed)/
