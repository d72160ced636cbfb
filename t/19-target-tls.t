# TLS to the target (websockify_ssl*): a throwaway CA and certificates made by the test
# (WsTls), a mock target that speaks TLS first and then like a VNC server (banner, echo).
# The handshake and the certificate checks end before the 101: a target that fails them is
# a 502 with one error_log line, and the next server of a group is tried.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsTls;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

our $Pki;
BEGIN { $Pki = make_pki() }

# A TLS mock target on rand port N with certificate CERT (a key of make_pki) and more
# mock_target options.
sub WsTest::Run::tls_target {
    my ($n, $cert, %o) = @_;
    my $tls = delete $o{tls} // {};
    return mock_target(port => rand_port($n), banner => "RFB 003.008\n", echo => 1,
        tls => { cert => $Pki->{$cert}, key => $Pki->{key}, %$tls }, %o);
}

our $LogFormat = <<'_EOC_';
    log_format ws '$request_uri|$status|$upstream_addr|$upstream_status';
_EOC_

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a verified target: name, SNI, data both ways through TLS
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
        websockify_ssl_server_name on;
    }
--- ws_test
my $t = tls_target(1, 'server', echo => 0, send => ['down', 1 << 20]);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $got = $c->read_data(12 + (1 << 20), 10);
is describe_diff($got, "RFB 003.008\n" . prng_bytes('down', 1 << 20)), 'identical',
    "$T: banner and 1 MiB from the target";
my $up = prng_bytes('up', 300000);
$c->send(ws_frame(payload => $up));
is describe_diff($t->wait_data(length $up, 10), $up), 'identical', "$T: 300 kB to the target";
my $tls = $t->tls(1);
is $tls->{sni}, 'vnc.test', "$T: SNI is websockify_ssl_name";
is $tls->{version}, 'TLSv1_3', "$T: TLS 1.3 by default";
$c->send(ws_close_frame(1000));
is $c->read_until_opcode(8, 3)->{code}, 1000, "$T: close reply";
ok $t->wait_eof(3), "$T: the target saw the end";
is $t->eof_kind(1), 'close_notify', "$T: a TLS close_notify alert, not a cut connection";
--- no_error_log
[error]
[crit]



=== TEST 2: the default name is the host in websockify_pass; no SNI unless asked for
Settings at http level reach every location (they share one TLS context).
--- http_config
    websockify_ssl on;
    websockify_ssl_verify on;
    websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
    upstream vnc.test { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- config
    location /ws { websockify_pass vnc.test; }
    location /sni {
        websockify_pass vnc.test;
        websockify_ssl_server_name on;
    }
    location /address { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = tls_target(1, 'server');
my $c = ws_connect();
is $c->{status}, 101, "$T: verified as vnc.test, the group's name";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
is $t->tls(1)->{sni}, '', "$T: no SNI by default";
$c = ws_connect(path => '/sni');
is $c->{status}, 101, "$T: websockify_ssl_server_name on";
is $t->tls(2)->{sni}, 'vnc.test', "$T: SNI is the group's name";
$c = ws_connect(path => '/address');
is $c->{status}, 502, "$T: an address is not the certificate's name";
like error_log_text(), qr/\[error\].*websockify: target "127\.0\.0\.1:\d+" SSL certificate does not match "127\.0\.0\.1"/,
    "$T: logged";



=== TEST 3: a certificate from an unknown CA: 502 with the verification error; not checked by default
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
    location /unverified {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
    }
--- ws_test
my $t = tls_target(1, 'wrong_ca');
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
ok !$t->tls(1)->{error}, "$T: the handshake itself succeeded";
my $port = rand_port(1);
my @lines = grep { /\[error\]/ } split /\n/, error_log_text();
is scalar(@lines), 1, "$T: one error line" or diag explain \@lines;
like $lines[0], qr/websockify: target "127\.0\.0\.1:$port" SSL certificate verify error: \((?:20|21):unable to (?:get local issuer certificate|verify the first certificate)\)/,
    "$T: names the verification error";
$c = ws_connect(path => '/unverified');
is $c->{status}, 101, "$T: websockify_ssl_verify is off by default";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";



=== TEST 4: a certificate for another name: 502
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test:5900;
    }
--- ws_test
my $t = tls_target(1, 'wrong_name');
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
like error_log_text(), qr/\[error\].*SSL certificate does not match "vnc\.test"/,
    "$T: logged with the name, its port left out";



=== TEST 5: an expired certificate: 502
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
my $t = tls_target(1, 'expired');
my $c = ws_connect();
is $c->{status}, 502, "$T: 502";
like error_log_text(), qr/\[error\].*SSL certificate verify error: \(10:certificate has expired\)/,
    "$T: logged";



=== TEST 6: websockify_ssl_verify_depth: two intermediate CAs need depth 2
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
        location /ws/deep { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; websockify_ssl_verify_depth 2; }
    }
--- ws_test
my $t = tls_target(1, 'chain');
my $c = ws_connect();
is $c->{status}, 502, "$T: depth 1 (the default): 502";
# OpenSSL stops looking for issuers past the depth: "unable to get local issuer certificate"
like error_log_text(), qr/\[error\].*SSL certificate verify error: \(\d+:[^)]+\)/, "$T: logged";
$c = ws_connect(path => '/ws/deep');
is $c->{status}, 101, "$T: depth 2: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";



=== TEST 7: a target that requires a client certificate
With TLS 1.2 the target refuses the handshake: 502. With TLS 1.3 the client's handshake
ends before the target has seen the (missing) certificate: the target's alert arrives once
the session is open, which then ends; nginx logs that SSL_read() error at crit (at error
in 1.30.6 and 1.31, which log every alert a peer sends at the connection's level).
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_certificate $TEST_NGINX_PKI_CLIENT;
        websockify_ssl_certificate_key $TEST_NGINX_PKI_CLIENT_KEY;
    }
    location /none12 {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.2;
    }
    location /none13 {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        # sessions are kept per server: the first one was made with a certificate
        websockify_ssl_session_reuse off;
    }
--- ws_test
my $t = tls_target(1, 'server', tls => { ca => $ENV{TEST_NGINX_PKI_CLIENT_CA} });
my $c = ws_connect();
is $c->{status}, 101, "$T: certificate given: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
like $t->tls(1)->{client}, qr/CN ?= ?websockify-client/, "$T: the target saw it";
$c->close;
$c = ws_connect(path => '/none12');
is $c->{status}, 502, "$T: none, TLS 1.2: 502";
like $t->tls(2)->{error}, qr/certificate/i, "$T: the target refused the handshake";
like error_log_text(), qr/\[error\].*SSL_do_handshake\(\) failed .*while SSL handshaking to websockify target/,
    "$T: logged";
$c = ws_connect(path => '/none13');
is $c->{status}, 101, "$T: none, TLS 1.3: 101";
my $f = $c->read_until_opcode(8, 5);
is $f && $f->{code}, 1011, "$T: then close 1011, a target error";
--- error_log eval
qr/(?:\[crit\]|\[error\]) .*tlsv13 alert certificate required/



=== TEST 8: websockify_ssl_certificate with variables: one per request
--- http_config
    map $arg_who $client_cert {
        default $TEST_NGINX_PKI_CLIENT;
        two     $TEST_NGINX_PKI_CLIENT2;
    }
    map $arg_who $client_key {
        default $TEST_NGINX_PKI_CLIENT_KEY;
        two     $TEST_NGINX_PKI_CLIENT2_KEY;
    }
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_certificate $client_cert;
        websockify_ssl_certificate_key $client_key;
        # a resumed session would carry the first certificate
        websockify_ssl_session_reuse off;
    }
--- ws_test
my $t = tls_target(1, 'server', tls => { ca => $ENV{TEST_NGINX_PKI_CLIENT_CA} });
for (['one', 'websockify-client', 1], ['two', 'second-client', 2]) {
    my ($who, $cn, $i) = @$_;
    my $c = ws_connect(path => "/ws?who=$who");
    is $c->{status}, 101, "$T: $who: 101";
    like $t->tls($i)->{client}, qr/CN ?= ?$cn/, "$T: $who: the target saw $cn";
}
--- no_error_log
[error]



=== TEST 9: websockify_ssl_protocols and websockify_ssl_ciphers
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.2;
        websockify_ssl_ciphers ECDHE-ECDSA-CHACHA20-POLY1305;
    }
    location /other {
        # another server: a session resumed from the first one would keep its cipher
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.2;
        websockify_ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;
    }
    location /only13 {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.3;
    }
--- ws_test
my $t = tls_target(1, 'server');
my $t3 = tls_target(3, 'server');
my $t12 = tls_target(2, 'server', tls => { version => 'TLSv1_2' });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $t->tls(1)->{version}, 'TLSv1_2', "$T: TLS 1.2";
is $t->tls(1)->{cipher}, 'ECDHE-ECDSA-CHACHA20-POLY1305', "$T: the configured cipher";
$c = ws_connect(path => '/other');
is $c->{status}, 101, "$T: 101";
is $t3->tls(1)->{cipher}, 'ECDHE-ECDSA-AES128-GCM-SHA256', "$T: another cipher";
$c = ws_connect(path => '/only13');
is $c->{status}, 502, "$T: TLS 1.3 only, against a TLS 1.2 target: 502";
like error_log_text(), qr/\[error\].*SSL_do_handshake\(\) failed/, "$T: logged";



=== TEST 10: websockify_ssl_session_reuse: on by default, off on request
--- http_config
    upstream vnc { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    upstream vnc2 { server 127.0.0.1:$TEST_NGINX_RAND_PORT_2; }
--- config
    location /ws { websockify_pass vnc; websockify_ssl on; }
    location /fresh {
        websockify_pass vnc2;
        websockify_ssl on;
        websockify_ssl_session_reuse off;
    }
--- ws_test
for ([1, '/ws', 1], [2, '/fresh', 0]) {
    my ($n, $path, $reuse) = @$_;
    my $t = tls_target($n, 'server');
    for my $i (1 .. 3) {
        my $c = ws_connect(path => $path);
        is $c->{status}, 101, "$T: $path $i: 101";
        # The banner comes after TLS 1.3's session tickets: nginx has them then.
        is $c->read_data(12, 5), "RFB 003.008\n", "$T: $path $i: banner";
        $c->close;
        ok $t->wait_eof(3, $i), "$T: $path $i: closed";
    }
    is join(',', map { $t->tls($_)->{reused} } 1 .. 3), $reuse ? '0,1,1' : '0,0,0',
        "$T: $path: sessions reused: " . ($reuse ? 'yes' : 'no');
}
--- no_error_log
[error]



=== TEST 11: an upstream group: a server that fails TLS is skipped like one that refuses
--- http_config eval
$::LogFormat . q{
    upstream vnc_tls {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
    }
}
--- config
    access_log logs/ws.log ws;
    location /ws {
        websockify_pass vnc_tls;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_name vnc.test;
    }
--- ws_test
my ($p1, $p2, $p3) = map { rand_port($_) } 1 .. 3;
# 1 speaks plain TCP, 2 has a certificate nobody trusts, 3 is fine
my $plain = mock_target(port => $p1, banner => "RFB 003.008\n");
my $bad = tls_target(2, 'wrong_ca');
my $good = tls_target(3, 'server', banner => "good\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 from the third server";
is $c->read_data(5, 5), "good\n", "$T: its banner";
my $log = error_log_text();
like $log, qr/\[error\].*SSL_do_handshake\(\) failed.*upstream: "127\.0\.0\.1:$p1"/, "$T: the plain server's failure logged";
like $log, qr/\[error\].*target "127\.0\.0\.1:$p2" SSL certificate verify error/, "$T: the untrusted one logged";
$c->close;
wait_until { access_log_text('ws.log') =~ m{^/ws}m } 5;
like access_log_text('ws.log'),
    qr{^/ws\|101\|127\.0\.0\.1:$p1, 127\.0\.0\.1:$p2, 127\.0\.0\.1:$p3\|502, 502, 101$}m,
    "$T: \$upstream_status of each attempt";
$c = ws_connect();
is $c->{status}, 101, "$T: again, the failed servers now marked down";
is $good->connections, 2, "$T: both sessions on the good server";



=== TEST 12: a target chosen per request: the default name is its host
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off;
--- config
    location /ws {
        set $vnc_host vnc.test;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
        websockify_allow vnc.test;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
        websockify_ssl_server_name on;
    }
--- ws_test
my $dns = mock_dns(port => rand_port(9), a => { 'vnc.test' => ['127.0.0.1'] });
my $t = tls_target(1, 'server');
my $c = ws_connect();
is $c->{status}, 101, "$T: verified as vnc.test";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
is $t->tls(1)->{sni}, 'vnc.test', "$T: SNI from the chosen host";
--- no_error_log
[error]



=== TEST 13: wss:// in front, TLS behind, both writers blocked: bytes intact
Retried TLS writes must come from the same buffer (OpenSSL's "bad write retry" otherwise):
a target that reads late and a client that reads late make both sides' writes wait.
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 ssl;
        server_name localhost;
        ssl_certificate $TEST_NGINX_PKI_SERVER;
        ssl_certificate_key $TEST_NGINX_PKI_KEY;
        location /ws {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_ssl on;
            websockify_buffer_size 16k;
        }
    }
--- ws_test
# More than the kernel buffers on both ways (4 MB send buffers at most here).
my $size = 8 << 20;
my $t = tls_target(1, 'server', echo => 0, read_delay => 2, send => ['tls-down', $size]);
my $c = ws_connect(port => rand_port(2), tls => 1, rcvbuf => 65536);
is $c->{status}, 101, "$T: 101 over wss://";
my $up = prng_bytes('tls-up', $size);
$c->send(ws_frame(payload => $up));
my $got = $c->read_data(12 + $size, 30);
is describe_diff($got, "RFB 003.008\n" . prng_bytes('tls-down', $size)), 'identical', "$T: 8 MiB down";
is describe_diff($t->wait_data($size, 30), $up), 'identical', "$T: 8 MiB up";
my $log = error_log_text();
SKIP: {
    skip "no debug log to see TLS writes wait", 1 if $log !~ /\[debug\]/;
    # SSL_write() returned SSL_ERROR_WANT_WRITE (3)
    like $log, qr/SSL_write: -1\n[^\n]*SSL_get_error: 3\n/, "$T: TLS writes had to be retried";
}
--- no_error_log
[error]
[crit]
[alert]
--- ws_timeout: 90



=== TEST 14: a target that never finishes the handshake: 504 after websockify_connect_timeout
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_connect_timeout 1s;
    }
--- ws_test
my $t = mock_target(port => rand_port(1));
my $t0 = time;
my $c = ws_connect(timeout => 10);
is $c->{status}, 504, "$T: 504";
my $dt = time - $t0;
ok $dt >= 0.9 && $dt < 5, "$T: after about a second ($dt s)";
like $t->data, qr/^\x16\x03/, "$T: the target got a ClientHello";
like error_log_text(), qr/\[error\].*websockify: cannot connect to target "127\.0\.0\.1:\d+": SSL handshake timed out/,
    "$T: logged";



=== TEST 15: an `if` block inside the location keeps TLS to the target
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_server_name on;
        websockify_ssl_name vnc.test;
        if ($arg_x) { add_header X-If yes; }
    }
--- ws_test
my $t = tls_target(1, 'server');
my $c = ws_connect(path => '/ws?x=1');
is $c->{status}, 101, "$T: 101 through the if block";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
is $t->tls(1)->{sni}, 'vnc.test', "$T: TLS with the location's settings";



=== TEST 16: nginx-conf/tls-target.conf, the recipe
--- http_config eval
main::recipe('tls-target.conf',
    'listen 127.0.0.1:6080;' => 'listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2;',
    '10.0.0.5:5901' => '127.0.0.1:$TEST_NGINX_RAND_PORT_1',
    'vnc.internal.example' => 'vnc.test',
    '/etc/nginx/vnc-ca.crt' => '$TEST_NGINX_PKI_CA',
    '/etc/nginx/websockify-client.crt' => '$TEST_NGINX_PKI_CLIENT',
    '/etc/nginx/websockify-client.key' => '$TEST_NGINX_PKI_CLIENT_KEY')
--- ws_test
my $t = tls_target(1, 'server', tls => { ca => $ENV{TEST_NGINX_PKI_CLIENT_CA} });
my $c = ws_connect(port => rand_port(2), path => '/websockify');
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
my $tls = $t->tls(1);
is $tls->{sni}, 'vnc.test', "$T: SNI";
like $tls->{client}, qr/websockify-client/, "$T: client certificate";
--- no_error_log
[error]



=== TEST 17: websockify_ssl_verify without a trusted certificate
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_ssl on; websockify_ssl_verify on; }
--- must_die
--- error_log eval
qr/\[emerg\] .*no websockify_ssl_trusted_certificate for websockify_ssl_verify/



=== TEST 18: websockify_ssl_certificate without a key
--- config
    location /ws {
        websockify_pass 127.0.0.1:5900;
        websockify_ssl on;
        websockify_ssl_certificate $TEST_NGINX_PKI_CLIENT;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*no "websockify_ssl_certificate_key" is defined for certificate/



=== TEST 19: websockify_ssl_protocols: an unknown name
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_ssl_protocols TLSv1.2 TLSv9; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "TLSv9"/



=== TEST 20: websockify_ssl: not a flag, and duplicates
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_ssl yes; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "yes" in "websockify_ssl" directive, it must be "on" or "off"/



=== TEST 21: a saved session is resumed only under the TLS settings that verified it
Two locations that name one address share its implicit upstream, so its peer and the
session that peer saved; an explicit group shared by two locations does the same. /b and
/gb trust a CA that did not sign the target's certificate; /a12 and /b12 do the same with
TLS 1.2 (session ids, not tickets).
--- http_config
    upstream vnc_shared { server 127.0.0.1:$TEST_NGINX_RAND_PORT_2; }
--- config
    location /a {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
    }
    location /b {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_OTHER_CA;
    }
    location /ga {
        websockify_pass vnc_shared;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
    }
    location /gb {
        websockify_pass vnc_shared;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_OTHER_CA;
    }
    location /a12 {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.2;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
    }
    location /b12 {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        websockify_ssl on;
        websockify_ssl_protocols TLSv1.2;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_OTHER_CA;
    }
--- ws_test
for ([1, '/a', '/b'], [2, '/ga', '/gb'], [3, '/a12', '/b12']) {
    my ($n, $good, $bad) = @$_;
    my $t = tls_target($n, 'server');
    for my $i (1 .. 2) {
        my $c = ws_connect(path => $good);
        is $c->{status}, 101, "$T: $good $i: 101";
        # The banner comes after TLS 1.3's session tickets: nginx has them then.
        is $c->read_data(12, 5), "RFB 003.008\n", "$T: $good $i: banner";
        $c->close;
        ok $t->wait_eof(3, $i), "$T: $good $i: closed";
    }
    is $t->tls(2)->{reused}, 1, "$T: $good: its own session resumed";
    my $c = ws_connect(path => $bad);
    is $c->{status}, 502, "$T: $bad after $good: 502";
    is $t->tls(3)->{reused}, 0, "$T: $bad: a full handshake";
    my $port = rand_port($n);
    my @lines = grep { /\[error\]/ && /127\.0\.0\.1:$port\b/ } split /\n/, error_log_text();
    is scalar(@lines), 1, "$T: $bad: one error line" or diag explain \@lines;
    like $lines[0], qr/websockify: target "127\.0\.0\.1:$port" SSL certificate verify error: \((?:20|21):/,
        "$T: $bad: the verification error";
    $c = ws_connect(path => $good);
    is $c->{status}, 101, "$T: $good after $bad: 101";
    $c->close;
}



=== TEST 22: a TLS connection from the group's keepalive cache is not taken: it was verified under proxy_pass's settings
proxy_pass https:// leaves a TLS connection idle in the group's keepalive cache. A session
must not adopt it: the location's own trust would be skipped (and the connection's TLS
callbacks are proxy's). It gets a connection of its own, verified as its location says.
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND} ? 'the keepalive cache times out under valgrind before the session takes it' : undef
--- http_config
    upstream vnc_ka {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        keepalive 4;
    }
--- config
    location /p {
        proxy_pass https://vnc_ka;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /ws-other {
        websockify_pass vnc_ka;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_OTHER_CA;
    }
    location /ws {
        websockify_pass vnc_ka;
        websockify_ssl on;
        websockify_ssl_verify on;
        websockify_ssl_name vnc.test;
        websockify_ssl_trusted_certificate $TEST_NGINX_PKI_CA;
    }
--- ws_test
my $t = tls_target(1, 'server', echo => 0,
    banner => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nhi\n");
my $proxied = sub {
    my $p = http_raw("GET /p HTTP/1.0\r\nHost: localhost\r\n\r\n");
    is $p->{status}, 200, "$T: proxied request";
};
$proxied->();
is $t->connections, 1, "$T: one TLS connection, idle in the cache";
my $c = ws_connect(path => '/ws-other');
is $c->{status}, 502, "$T: the cached connection was not taken: the untrusted server is refused";
ok wait_until(sub { $t->connections == 2 }, 5), "$T: a connection of its own";
like error_log_text(), qr/websockify: target "127\.0\.0\.1:\d+" SSL certificate verify error/,
    "$T: verified under this location's trust";
$proxied->();
my $n = $t->connections;
$c = ws_connect(path => '/ws');
is $c->{status}, 101, "$T: trusted: 101";
ok wait_until(sub { $t->connections == $n + 1 }, 5), "$T: on a new connection, not the cached one";
$c->close;
