# websockify_proxy_protocol: the target learns the client's address from a PROXY protocol
# header sent before any other byte (v1 text, or v2 binary), like the stream module's
# proxy_protocol. The mock target reads the header alone and keeps its exact bytes; the
# test builds the header it expects from the client's own socket.
use lib 't/lib';
use Test::Nginx::Socket;
use Socket qw(inet_pton AF_INET AF_INET6);
use WsTest;
use WsTls;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

our $Pki;
BEGIN { $Pki = make_pki() }

# The v2 header for a TCP connection, packed here independently of the module.
sub WsTest::Run::v2_header {
    my ($family, $src, $dst, $sport, $dport) = @_;
    my ($af, $fam, $len) = $family eq 'TCP4' ? (AF_INET, 0x11, 12) : (AF_INET6, 0x21, 36);
    return "\r\n\r\n\0\r\nQUIT\n" . pack('C C n', 0x21, $fam, $len)
        . inet_pton($af, $src) . inet_pton($af, $dst) . pack('n n', $sport, $dport);
}

our $Skip6 = ipv6_skip_reason();

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: v1 for an IPv4 client, then the relayed bytes
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_proxy_protocol on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $cport = $c->sock->sockport;
my $nport = server_port_client();
wait_until { defined $t->proxy } 5;
is $t->proxy, "PROXY TCP4 127.0.0.1 127.0.0.1 $cport $nport\r\n", "$T: the header, byte for byte";
is $t->proxy_parsed, "v1 TCP4 127.0.0.1 127.0.0.1 $cport $nport", "$T: parsed by the target";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => "after the header"));
is $t->wait_data(16, 5), "after the header", "$T: client bytes follow the header alone";
--- no_error_log
[error]



=== TEST 2: v2 for an IPv4 client
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_proxy_protocol v2;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
my $cport = $c->sock->sockport;
wait_until { defined $t->proxy } 5;
is unpack('H*', $t->proxy // ''),
    unpack('H*', v2_header('TCP4', '127.0.0.1', '127.0.0.1', $cport, server_port_client())),
    "$T: the header, byte for byte";
is $t->proxy_parsed, "v2 TCP4 127.0.0.1 127.0.0.1 $cport " . server_port_client(), "$T: parsed by the target";
$c->send(ws_frame(payload => "v2 data"));
is $t->wait_data(7, 5), "v2 data", "$T: data after the header";
--- no_error_log
[error]



=== TEST 3: v1 and v2 for an IPv6 client
--- http_config eval
# a server on [::1] when the loopback has IPv6
($::Skip6 ? '' : q{
    server {
        listen [::1]:$TEST_NGINX_RAND_PORT_2;
        location /v1 {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_proxy_protocol on;
        }
        location /v2 {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_proxy_protocol v2;
        }
    }
}) . '    # ports $TEST_NGINX_RAND_PORT_1 $TEST_NGINX_RAND_PORT_2'
--- ws_test
SKIP: {
skip "$main::Skip6 (add it: ip -6 addr add ::1/128 dev lo)", 4 if $main::Skip6;
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "X");
my $nport = rand_port(2);
my $c = ws_connect(addr => '::1', port => $nport, path => '/v1');
is $c->{status}, 101, "$T: v1: 101";
my $cport = $c->sock->sockport;
wait_until { defined $t->proxy(1) } 5;
is $t->proxy(1), "PROXY TCP6 ::1 ::1 $cport $nport\r\n", "$T: v1 header";
$c = ws_connect(addr => '::1', port => $nport, path => '/v2');
is $c->{status}, 101, "$T: v2: 101";
$cport = $c->sock->sockport;
wait_until { defined $t->proxy(2) } 5;
is unpack('H*', $t->proxy(2) // ''), unpack('H*', v2_header('TCP6', '::1', '::1', $cport, $nport)),
    "$T: v2 header";
}



=== TEST 4: the real client's address behind a proxy (realip), and off by default
--- config
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Real-IP;
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_proxy_protocol on;
        location /ws/v2 { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; websockify_proxy_protocol v2; }
        location /ws/off { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_2; websockify_proxy_protocol off; }
    }
    location /default { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_2; }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "X");
my $plain = mock_target(port => rand_port(2), banner => "X");
my $nport = server_port_client();
my $c = ws_connect(headers => { 'X-Real-IP' => '203.0.113.7' });
is $c->{status}, 101, "$T: 101";
wait_until { defined $t->proxy(1) } 5;
# realip gives an address without a port
is $t->proxy(1), "PROXY TCP4 203.0.113.7 127.0.0.1 0 $nport\r\n", "$T: v1 carries \$remote_addr";
$c = ws_connect(path => '/ws/v2', headers => { 'X-Real-IP' => '2001:db8::7' });
is $c->{status}, 101, "$T: v2: 101";
wait_until { defined $t->proxy(2) } 5;
is $t->proxy_parsed(2), "v2 TCP6 2001:db8::7 ::ffff:127.0.0.1 0 $nport",
    "$T: v2: an IPv6 client to an IPv4 server: both as IPv6";
for my $path ('/ws/off', '/default') {
    $c = ws_connect(path => $path);
    $c->send(ws_frame(payload => "plain"));
    my $i = $path eq '/ws/off' ? 1 : 2;
    is $plain->wait_data(5, 5, $i), "plain", "$T: $path: no header, the client's bytes first";
}



=== TEST 5: the header goes in clear, before the TLS handshake
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        websockify_proxy_protocol on;
        websockify_ssl on;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n", echo => 1,
    tls => { cert => $main::Pki->{server}, key => $main::Pki->{key} });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner over TLS";
my $cport = $c->sock->sockport;
is $t->proxy, "PROXY TCP4 127.0.0.1 127.0.0.1 $cport " . server_port_client() . "\r\n", "$T: header first";
ok !$t->tls(1)->{error}, "$T: then TLS";
--- no_error_log
[error]



=== TEST 6: a group: every server tried gets its own header, once
--- http_config
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_2;
    }
--- config
    location /ws {
        websockify_pass vnc;
        websockify_proxy_protocol on;
        websockify_ssl on;
    }
--- ws_test
# the first server reads the header, then fails TLS (it speaks plain TCP)
my $plain = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n");
my $tls = mock_target(port => rand_port(2), proxy_protocol => 1, banner => "two\n",
    tls => { cert => $main::Pki->{server}, key => $main::Pki->{key} });
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 from the second server";
is $c->read_data(4, 5), "two\n", "$T: its banner";
my $cport = $c->sock->sockport;
my $want = "PROXY TCP4 127.0.0.1 127.0.0.1 $cport " . server_port_client() . "\r\n";
is $plain->proxy, $want, "$T: the first server got the header";
is $tls->proxy, $want, "$T: the second too";



=== TEST 7: set at http level, a location without its own setting sends the header
--- http_config
    websockify_proxy_protocol on;
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
ok wait_until(sub { defined $t->proxy }, 5), "$T: the target read a header";
is $t->proxy, "PROXY TCP4 127.0.0.1 127.0.0.1 " . $c->sock->sockport . " " . server_port_client() . "\r\n",
    "$T: v1, inherited from http";
--- no_error_log
[error]



=== TEST 8: set at server level, a location without its own setting sends the header
--- config
    websockify_proxy_protocol v2;
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), proxy_protocol => 1, banner => "RFB 003.008\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: 101";
ok wait_until(sub { defined $t->proxy }, 5), "$T: the target read a header";
is $t->proxy_parsed, "v2 TCP4 127.0.0.1 127.0.0.1 " . $c->sock->sockport . " " . server_port_client(),
    "$T: v2, inherited from the server";
--- no_error_log
[error]



=== TEST 9: a keepalive-cached connection already carried bytes: no PROXY header on it
proxy_pass leaves the connection idle in the group's keepalive cache (as t/16 TEST 4); the
session that takes it must not put a header in the middle of that byte stream.
--- skip_eval: 1: $ENV{TEST_NGINX_USE_VALGRIND} ? 'the keepalive cache times out under valgrind before the session takes it' : undef
--- http_config
    upstream vnc {
        server 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        keepalive 4;
    }
--- config
    location /p {
        proxy_pass http://vnc;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location /ws { websockify_pass vnc; websockify_proxy_protocol on; }
--- ws_test
# a plain target: proxy_pass sends no header, so the cached connection has none either
my $t = mock_target(port => rand_port(1),
    banner => "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nhi\n");
my $p = http_raw("GET /p HTTP/1.0\r\nHost: localhost\r\n\r\n");
is $p->{status}, 200, "$T: proxied request";
is $t->connections, 1, "$T: one connection, now idle in the cache";
my $c = ws_connect();
is $c->{status}, 101, "$T: 101 over the cached connection";
$c->send(ws_frame(payload => 'over keepalive'));
ok wait_until(sub { $t->data =~ /over keepalive$/ }, 5), "$T: the payload reached the target";
is $t->connections, 1, "$T: on that same connection";
my ($after) = $t->data =~ /\r\n\r\n(.*)\z/s;
is $after, 'over keepalive', "$T: right after the proxied request, no PROXY header between";
--- no_error_log
[error]



=== TEST 10: websockify_proxy_protocol: a wrong value
--- config
    location /ws { websockify_pass 127.0.0.1:5900; websockify_proxy_protocol v3; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "v3" in "websockify_proxy_protocol" directive, it must be "on", "off" or "v2"/
