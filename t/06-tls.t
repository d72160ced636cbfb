# Deployment: TLS (wss://), a server with http2 enabled still serving HTTP/1.1
# WebSocket clients, and the access log line of a session.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

BEGIN {
    my $dir = WsTest::ws_tmp();
    system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $dir/key.pem -out $dir/cert.pem"
        . " -days 2 -subj /CN=localhost >/dev/null 2>&1") == 0
        or die "openssl req failed\n";
    # nginx >= 1.25.1 deprecates "listen ... http2" in favour of "http2 on;"
    my ($v) = `@{[ $ENV{TEST_NGINX_BINARY} || "nginx" ]} -v 2>&1` =~ m{nginx/(\d+\.\d+\.\d+)};
    my $new = $v && sprintf('%03d%03d%03d', split /\./, $v) ge '001025001';
    $ENV{TEST_NGINX_WS_H2_LISTEN} = $new ? 'ssl' : 'ssl http2';
    $ENV{TEST_NGINX_WS_H2_ON} = $new ? 'http2 on;' : '';
}

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: wss:// through a listen ... ssl server
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 ssl;
        server_name localhost;
        ssl_certificate $TEST_NGINX_WS_TMP/cert.pem;
        ssl_certificate_key $TEST_NGINX_WS_TMP/key.pem;
        location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", send => ['tls', 1 << 20]);
my $c = ws_connect(port => rand_port(2), tls => 1);
is $c->{status}, 101, "$T: status";
is $c->{headers}{'sec-websocket-accept'}, ws_accept($c->{key}), "$T: accept key";
my $got = $c->read_data(12 + (1 << 20), 10);
is describe_diff($got, "RFB 003.008\n" . prng_bytes('tls', 1 << 20)), 'identical', "$T: target data over TLS";
my $data = prng_bytes('tls-up', 200000);
$c->send(ws_frame(payload => $data));
is describe_diff($t->wait_data(length $data, 10), $data), 'identical', "$T: client data over TLS";
$c->send(ws_frame(opcode => 9, payload => 'tls ping'));
my $f = $c->read_until_opcode(10, 3);
is $f && $f->{payload}, 'tls ping', "$T: pong over TLS";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'close reply over TLS', 3);
ok $t->wait_eof(3), "$T: target closed";



=== TEST 2: listen ... ssl http2: an HTTP/1.1 client without ALPN still gets a WebSocket
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 $TEST_NGINX_WS_H2_LISTEN;
        $TEST_NGINX_WS_H2_ON
        server_name localhost;
        ssl_certificate $TEST_NGINX_WS_TMP/cert.pem;
        ssl_certificate_key $TEST_NGINX_WS_TMP/key.pem;
        location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
for my $alpn (undef, ['http/1.1']) {
    my $what = $alpn ? 'ALPN http/1.1' : 'no ALPN';
    my $c = ws_connect(port => rand_port(2), tls => 1, alpn => $alpn);
    is $c->{status}, 101, "$T: status ($what)";
    is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner ($what)";
    $c->send(ws_frame(payload => "h2 server, $what"));
    is $c->read_data(length("h2 server, $what"), 5), "h2 server, $what", "$T: echo ($what)";
    $c->close;
}
--- no_error_log
[error]



=== TEST 3: plain server with http2 enabled elsewhere in the config, same port as TLS-less clients
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 $TEST_NGINX_WS_H2_LISTEN;
        $TEST_NGINX_WS_H2_ON
        server_name localhost;
        ssl_certificate $TEST_NGINX_WS_TMP/cert.pem;
        ssl_certificate_key $TEST_NGINX_WS_TMP/key.pem;
        location / { return 204; }
    }
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "plain\n");
my $c = ws_connect();
is $c->{status}, 101, "$T: status";
is $c->read_data(6, 5), "plain\n", "$T: banner";



=== TEST 4: one access log line per session: 101, $upstream_addr, $request_time
--- http_config
    log_format wslog '$status|$upstream_addr|$request_time|$request_uri';
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log logs/ws_access.log wslog;
    }
--- ws_test
my $port = rand_port(1);
my $t = mock_target(port => $port, echo => 1);
my $c = ws_connect(path => '/ws?session=1');
is $c->{status}, 101, "$T: status";
for (1 .. 3) {
    $c->send(ws_frame(payload => "frame $_"));
    is $c->read_data(7, 3), "frame $_", "$T: echo $_";
    sleep 0.4;
}
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'close reply', 3);
$c->close;
my $log = wait_until(sub { my $l = access_log_text('ws_access.log'); $l =~ /\n/ ? $l : undef }, 5) // '';
my @lines = grep { /session=1/ } split /\n/, $log;
is scalar(@lines), 1, "$T: one line for the session";
my ($status, $addr, $rt) = split /\|/, $lines[0] // '';
is $status, 101, "$T: status 101 logged";
is $addr, "127.0.0.1:$port", "$T: \$upstream_addr is the target";
ok defined $rt && $rt =~ /^\d+\.\d+$/ && $rt >= 1.0 && $rt < 10, "$T: \$request_time covers the session (" . ($rt // 'undef') . ")";



=== TEST 5: access log for a refused target: 502 with $upstream_addr
--- http_config
    log_format wslog '$status|$upstream_addr';
--- config
    location /ws {
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log logs/ws_access5.log wslog;
    }
--- ws_test
my $port = rand_port(1);
my $c = http_raw(ws_request());
is $c->{status}, 502, "$T: 502";
my $log = wait_until(sub { my $l = access_log_text('ws_access5.log'); $l =~ /\n/ ? $l : undef }, 5) // '';
like $log, qr/^502\|127\.0\.0\.1:$port$/m, "$T: logged 502 and the target";



=== TEST 6: wss: heartbeat pings that meet a full socket (a background tab) keep the session
--- http_config
    server {
        # A fixed small send buffer (no autotuning): a few kB fill the socket.
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 ssl sndbuf=4k;
        server_name localhost;
        ssl_certificate $TEST_NGINX_WS_TMP/cert.pem;
        ssl_certificate_key $TEST_NGINX_WS_TMP/key.pem;
        location /ws {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
            websockify_ping_interval 1s;
        }
        # Pings every 10 ms fill whatever room the data left, so that one of them is
        # the write that meets the full socket whatever the kernel's buffer sizes.
        location /fast {
            websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_3;
            websockify_ping_interval 10ms;
        }
    }
--- ws_test
# An SSL_write that meets a full socket must be retried with the same buffer; a ping
# moved between the attempts ends the session with "bad write retry".
my %len = ('/ws' => 13000, '/fast' => 6000);
my @t = (mock_target(port => rand_port(1), send => ['tls full', 13000], echo => 1),
    mock_target(port => rand_port(3), send => ['tls full', 6000], echo => 1));
my %c = map {
    $_ => ws_connect(path => $_, port => rand_port(2), tls => 1, rcvbuf => 4096)
} sort keys %len;
is $c{$_}{status}, 101, "$T: $_: status" for sort keys %c;
sleep 2.5;    # a background tab: nothing read
for my $path (sort keys %c) {
    my $c = $c{$path};
    my $got = $c->read_data($len{$path}, 20);
    is describe_diff($got, prng_bytes('tls full', $len{$path})), 'identical',
        "$T: $path: every byte after the pause";
    eval {
        my $ping = grep({ $_->{opcode} == 9 } @{ $c->{control} // [] })
            || $c->read_until_opcode(9, 5);
        ok $ping, "$T: $path: pings came";
        $c->send(ws_frame(opcode => 9, payload => 'after the pause'));
        my $f = $c->read_until_opcode(10, 5);
        is $f && $f->{payload}, 'after the pause', "$T: $path: the session still answers a ping";
        $c->send(ws_frame(payload => 'still relaying'));
        is $c->read_data(14, 5), 'still relaying', "$T: $path: and relays data both ways";
        1;
    } or fail("$T: $path: the session ended: $@");
}
is error_log_count(qr/bad write retry/), 0, "$T: no bad write retry";
--- no_error_log
[error]
--- ws_timeout: 40
