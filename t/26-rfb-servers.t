# The RFB security proxy against real VNC servers from the Debian archive, each started
# and stopped by its block: TigerVNC's Xvnc (VncAuth, VeNCrypt X509Vnc, X509None,
# TLSVnc) and x11vnc with -rfbauth. The browser is the test: it is offered None only and
# never has a password.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsTls;
use WsRecipes;

our $Pki;
our $Skip;
our ($NoUser, $User);
BEGIN {
    $Skip = join ', ', grep { system("command -v $_ >/dev/null 2>&1") != 0 } qw(Xvnc x11vnc Xvfb vncpasswd);
    $Pki = make_pki();
    my $dir = WsTest::ws_tmp();
    # The VNC password files: TigerVNC's and x11vnc's (the same obfuscated format).
    system("printf 'gw-pass\\n' | vncpasswd -f >$dir/xvnc.passwd") == 0 || $Skip
        or die "vncpasswd failed\n";
    $ENV{TEST_NGINX_VNC_PASSWD} = "$dir/xvnc.passwd";
    # A throwaway system user for Plain (PAM checks it): only as root, removed at the end.
    $NoUser = $> == 0 ? '' : 'Plain needs root to add a throwaway user';
    if (!$NoUser && !$Skip) {
        my $user = 'wsrfb' . ($$ % 100000);
        my $pass = 'pl-' . join '', map { ('a' .. 'z')[rand 26] } 1 .. 12;
        system("useradd -M -N -s /usr/sbin/nologin $user") == 0 or die "useradd failed\n";
        $User = $user;
        open my $p, '|-', 'chpasswd' or die;
        print $p "$user:$pass\n";
        close $p or die "chpasswd failed\n";
        @ENV{qw(TEST_NGINX_RFB_USER TEST_NGINX_RFB_USER_PASS)} = ($user, $pass);
    }
}
END { system("userdel $User >/dev/null 2>&1") if $User }

# Xvnc on rand port N with these security options; its desktop is named NAME.
sub WsTest::Run::xvnc {
    my ($n, $name, @security) = @_;
    my $port = rand_port($n);
    my $display = 100 + $port % 800;
    return spawn_server(name => 'Xvnc', port => $port, cmd => ['Xvnc', ":$display",
        '-rfbport', $port, '-localhost', '-nolisten', 'tcp', '-geometry', '320x200',
        '-depth', '24', '-desktop', $name, '-AlwaysShared', @security]);
}

# The browser's half: the gateway's handshake (None only), ClientInit, ServerInit, then
# one framebuffer update, the proof that the desktop is there.
sub WsTest::Run::browser_sees {
    my ($c, $name) = @_;
    my $T = $WsTest::T;
    is $c->read_data(12, 10), "RFB 003.008\n", "$T: the gateway's version";
    $c->send(ws_frame(payload => "RFB 003.008\n"));
    is unpack('H*', $c->read_data(2, 10)), '0101', "$T: None only";
    $c->send(ws_frame(payload => "\x01"));
    is unpack('H*', $c->read_data(4, 10)), '00000000', "$T: OK";
    $c->send(ws_frame(payload => "\x01"));
    my $init = $c->read_data(24, 10);
    my ($w, $h) = unpack('n n', $init);
    is "${w}x$h", '320x200', "$T: ServerInit: the desktop's size";
    my $len = unpack('N', substr($init, 20, 4) // "\0\0\0\0");
    $init .= $c->read_data(24 + $len - length $init, 10) if length $init < 24 + $len;
    is substr($init, 24, $len), $name, "$T: ServerInit: the desktop's name";
    $c->send(ws_frame(payload => pack('C C n n n n', 3, 0, 0, 0, 320, 200)));
    my $update = $c->read_data(1, 10);
    is unpack('C', $update // "\xff"), 0, "$T: a FramebufferUpdate comes";
}

our $Recipe = recipe('rfb-password.conf',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;',
    '127.0.0.1:5922' => '127.0.0.1:$TEST_NGINX_RAND_PORT_1',
    '127.0.0.1:5921' => '127.0.0.1:$TEST_NGINX_RAND_PORT_3',
    '"change-me"' => '"gw-pass"',
    '/etc/nginx/vnc-ca.crt' => '$TEST_NGINX_PKI_CA',
    'vnc.internal.example' => 'vnc.test');

our $Skip_reason = $Skip ? "no $Skip (Debian packages tigervnc-standalone-server, tigervnc-tools, x11vnc, xvfb)" : '';

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: Xvnc with VncAuth: the gateway logs in, the browser gets the desktop
--- skip_eval: 12: $::Skip_reason
--- http_config
    log_format rfb '$status|$websockify_rfb_security|$websockify_rfb_desktop';
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
        access_log logs/rfb.log rfb;
    }
--- ws_test
xvnc(1, 'xvnc-vncauth', '-SecurityTypes', 'VncAuth', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'xvnc-vncauth');
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'clean close');
$c->close;   # nginx writes the access log line once its lingering close ends
my $log = wait_until(sub { my $l = access_log_text('rfb.log'); $l =~ /\n/ ? $l : undef }, 5) // '';
is $log, "101|vnc|xvnc-vncauth\n", "$T: the access log names the type and the desktop";
--- no_error_log
[error]
gw-pass



=== TEST 2: Xvnc with VncAuth and a wrong password: 502, one line
--- skip_eval: 1: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password not-it;
    }
--- ws_test
xvnc(1, 'xvnc-wrong', '-SecurityTypes', 'VncAuth', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD});
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*cannot log in to VNC server "127\.0\.0\.1:\d+": authentication failed with security type vnc/
--- no_error_log
not-it



=== TEST 3: x11vnc with -rfbauth
--- skip_eval: 7: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
    }
--- ws_test
my $port = rand_port(1);
my $display = 100 + ($port + 400) % 800;
spawn_server(name => 'Xvfb', socket => "/tmp/.X11-unix/X$display",
    cmd => ['Xvfb', ":$display", '-screen', '0', '320x200x24', '-nolisten', 'tcp']);
spawn_server(name => 'x11vnc', port => $port, cmd => ['x11vnc', '-display', ":$display",
    '-rfbport', $port, '-localhost', '-noipv6', '-rfbauth', $ENV{TEST_NGINX_VNC_PASSWD},
    '-forever', '-shared', '-norc', '-desktop', 'x11vnc-auth']);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'x11vnc-auth');
--- no_error_log
[error]



=== TEST 4: Xvnc with VeNCrypt X509Vnc: TLS verified inside RFB, then VncAuth through it
--- skip_eval: 7: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
        websockify_rfb_security x509vnc;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-x509', '-SecurityTypes', 'X509Vnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD},
    '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'xvnc-x509');
--- no_error_log
[error]



=== TEST 5: X509Vnc with a certificate the location does not trust: 502
--- skip_eval: 1: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
        websockify_rfb_security x509vnc;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_OTHER_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-untrusted', '-SecurityTypes', 'X509Vnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD},
    '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*certificate/



=== TEST 6: X509None: no password at all, the TLS is the authentication
--- skip_eval: 7: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password "";
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-x509none', '-SecurityTypes', 'X509None',
    '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 (the default policy takes x509none)";
browser_sees($c, 'xvnc-x509none');
--- no_error_log
[error]



=== TEST 7: a server offering only VncAuth to a location that allows only x509 types: 502 naming what it offered
--- skip_eval: 1: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
        websockify_rfb_security x509vnc x509plain;
    }
--- ws_test
xvnc(1, 'xvnc-policy', '-SecurityTypes', 'VncAuth', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD});
my $c = ws_connect();
is $c->{status}, 502, "$T: 502, no silent downgrade";
--- error_log eval
qr/\[error\] .*no allowed security type: the VNC server offered security types vnc/



=== TEST 8: Xvnc with X509Plain: the user name and password checked by PAM, inside verified TLS
--- skip_eval: 7: $::Skip_reason || $::NoUser
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_username $TEST_NGINX_RFB_USER;
        websockify_rfb_password $TEST_NGINX_RFB_USER_PASS;
        websockify_rfb_security x509plain;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-plain', '-SecurityTypes', 'X509Plain', '-PlainUsers', $ENV{TEST_NGINX_RFB_USER},
    '-PAMService', 'tigervnc', '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'xvnc-plain');
--- no_error_log
[error]



=== TEST 9: X509Plain with a wrong password: 502 with the server's reason
--- skip_eval: 1: $::Skip_reason || $::NoUser
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_username $TEST_NGINX_RFB_USER;
        websockify_rfb_password wrong-one;
        websockify_rfb_security x509plain;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-plain-bad', '-SecurityTypes', 'X509Plain', '-PlainUsers', $ENV{TEST_NGINX_RFB_USER},
    '-PAMService', 'tigervnc', '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*cannot log in to VNC server "[^"]+": authentication failed with security type x509plain/
--- no_error_log
wrong-one



=== TEST 10: anonymous TLS (TLSVnc) only when listed and its ciphers allowed
--- skip_eval: 7: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
        websockify_rfb_security tlsvnc;
        websockify_ssl_protocols TLSv1.2;
        websockify_ssl_ciphers "aNULL:@SECLEVEL=0";
    }
--- ws_test
xvnc(1, 'xvnc-anon', '-SecurityTypes', 'TLSVnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'xvnc-anon');
--- no_error_log
[error]



=== TEST 11: the default policy refuses anonymous TLS
--- skip_eval: 1: $::Skip_reason
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_password gw-pass;
    }
--- ws_test
xvnc(1, 'xvnc-anon-refused', '-SecurityTypes', 'TLSVnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD});
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
--- error_log eval
qr/\[error\] .*no allowed security type: the VNC server offered VeNCrypt subtypes tlsvnc/



=== TEST 12: nginx-conf/rfb-password.conf's X509Vnc location in front of Xvnc
--- skip_eval: 7: $::Skip_reason
--- http_config eval: $::Recipe
--- config
--- ws_test
xvnc(1, 'xvnc-recipe', '-SecurityTypes', 'X509Vnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD},
    '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect(port => rand_port(2), path => '/websockify-x509?token=desk1');
is $c->{status}, 101, "$T: 101";
browser_sees($c, 'xvnc-recipe');
--- no_error_log
[error]



=== TEST 13: Xvnc with VeNCrypt Plain (no TLS): used only when listed
--- skip_eval: 7: $::Skip_reason || $::NoUser
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_username $TEST_NGINX_RFB_USER;
        websockify_rfb_password $TEST_NGINX_RFB_USER_PASS;
        websockify_rfb_security plain;
    }
    location /default {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_rfb_username $TEST_NGINX_RFB_USER;
        websockify_rfb_password $TEST_NGINX_RFB_USER_PASS;
    }
--- ws_test
xvnc(1, 'xvnc-plain-clear', '-SecurityTypes', 'Plain', '-PlainUsers', $ENV{TEST_NGINX_RFB_USER},
    '-PAMService', 'tigervnc');
my $c = ws_connect(path => '/default');
is $c->{status}, 502, "$T: the default policy sends no password in clear: 502";
$c = ws_connect();
is $c->{status}, 101, "$T: listed: 101";
browser_sees($c, 'xvnc-plain-clear');
--- error_log eval
qr/\[error\] .*no allowed security type: the VNC server offered VeNCrypt subtypes plain/



=== TEST 14: a group whose first server's VeNCrypt certificate does not verify: the next one logs in afresh
--- skip_eval: 7: $::Skip_reason
--- http_config
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /ws {
        websockify_pass vnc;
        websockify_rfb_password gw-pass;
        websockify_rfb_security x509vnc;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
xvnc(1, 'xvnc-wrong-ca', '-SecurityTypes', 'X509Vnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD},
    '-X509Cert', $::Pki->{wrong_ca}, '-X509Key', $::Pki->{key});
xvnc(2, 'xvnc-good', '-SecurityTypes', 'X509Vnc', '-PasswordFile', $ENV{TEST_NGINX_VNC_PASSWD},
    '-X509Cert', $::Pki->{server}, '-X509Key', $::Pki->{key});
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 from the second server";
browser_sees($c, 'xvnc-good');
--- error_log eval
qr/\[error\] .*certificate verify error/
--- no_error_log
[alert]
