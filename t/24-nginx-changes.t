# nginx changes since 1.29 that meet the module, checked on every version:
# - HTTP/2 (1.31.0 rejects HTTP/2 requests that carry Connection or Upgrade): an HTTP/2
#   request for a websockify location is refused before any target is opened, whoever
#   refuses it, and HTTP/1.1 WebSocket clients on a cleartext `http2 on` listener work;
# - upstream keepalive on by default (1.29.7): a session's target connection is closed
#   when the session ends, never parked in the group's keepalive cache.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

BEGIN {
    my $new = WsTest::nginx_at_least('1.25.1');
    # Before 1.25.1 a cleartext "listen ... http2" speaks HTTP/2 only (prior knowledge);
    # since then "http2 on" on a cleartext listener tells HTTP/2 from HTTP/1.1 by the preface.
    $ENV{TEST_NGINX_WS_H2C_LISTEN} = $new ? '' : 'http2';
    $ENV{TEST_NGINX_WS_H2C_ON} = $new ? 'http2 on;' : '';
    $ENV{TEST_NGINX_WS_H2C_BOTH} = $new ? 1 : 0;
}

# HTTP/2 with prior knowledge, frames built by hand: the connection preface, an empty
# SETTINGS frame, and one HEADERS frame (END_STREAM | END_HEADERS) on stream 1 whose
# header block is HPACK literals without indexing or Huffman coding (RFC 7541 6.2.2).
# Returns the response status of stream 1, or 'reset' for RST_STREAM, 'goaway', 'eof'.
sub h2_request {
    my ($port, @headers) = @_;
    my $frame = sub { my ($type, $flags, $id, $payload) = @_;
        substr(pack('N', length $payload), 1) . pack('CCN', $type, $flags, $id) . $payload };
    my $block = '';
    while (my ($name, $value) = splice @headers, 0, 2) {
        $block .= "\0" . chr(length $name) . $name . chr(length $value) . $value;
    }
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5)
        or die "connect: $!\n";
    print $sock "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", $frame->(4, 0, 0, ''), $frame->(1, 5, 1, $block);
    my $buf = '';
    my $deadline = time + 5;
    while (time < $deadline) {
        while (length $buf >= 9) {
            my ($l1, $l2, $type, $flags, $id) = unpack('CnCCN', $buf);
            my $len = $l1 << 16 | $l2;
            last if length $buf < 9 + $len;
            my $payload = substr($buf, 9, $len);
            substr($buf, 0, 9 + $len) = '';
            return 'goaway' if $type == 7;
            next unless ($id & 0x7fffffff) == 1;
            return 'reset' if $type == 3;
            next unless $type == 1;
            # nginx sends :status indexed (0x88 200 ... 0x8c 400 0x8d 404 0x8e 500) or as a
            # literal with the :status name index (0x48, then a 3-byte plain string).
            my %indexed = (0x88, 200, 0x89, 204, 0x8a, 206, 0x8b, 304, 0x8c, 400, 0x8d, 404, 0x8e, 500);
            my $first = ord $payload;
            return $indexed{$first} if exists $indexed{$first};
            return substr($payload, 2, 3) if $first == 0x48 && ord(substr($payload, 1, 1)) == 3;
            return 'unparsed ' . unpack('H*', substr($payload, 0, 8));
        }
        my $n = sysread($sock, $buf, 65536, length $buf);
        return 'eof' unless $n;
    }
    return 'timeout';
}

our @WsHeaders = (
    ':method' => 'GET', ':scheme' => 'http', ':path' => '/ws', ':authority' => 'localhost',
    'sec-websocket-key' => 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version' => '13',
);

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: an HTTP/2 request with Connection and Upgrade headers never reaches a target
nginx 1.31 refuses it itself (400, "client sent "Connection" header" at info); before, the
module refuses it (a WebSocket handshake is HTTP/1.1, RFC 6455 4.1). Either way: no
target connection, no 101, the worker lives, and the next request on the listener works.
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 $TEST_NGINX_WS_H2C_LISTEN;
        $TEST_NGINX_WS_H2C_ON
        location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
for my $extra (['connection' => 'upgrade', 'upgrade' => 'websocket'], []) {
    my $what = @$extra ? 'with Connection/Upgrade' : 'without them';
    my $got = main::h2_request(rand_port(2), @main::WsHeaders, @$extra);
    ok $got eq '400' || $got eq 'reset', "$T: HTTP/2 request $what refused ($got)";
}
sleep 0.3;
is $t->connections, 0, "$T: no target connection was opened";
my $again = main::h2_request(rand_port(2), @main::WsHeaders);
ok $again eq '400' || $again eq 'reset', "$T: the listener still answers ($again)";
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 2: HTTP/1.1 WebSocket clients on a cleartext listener with http2 on
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 $TEST_NGINX_WS_H2C_LISTEN;
        $TEST_NGINX_WS_H2C_ON
        location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    }
--- skip_eval: 3: $ENV{TEST_NGINX_WS_H2C_BOTH} ? undef : 'before nginx 1.25.1 a cleartext http2 listener speaks only HTTP/2'
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect(port => rand_port(2));
is $c->{status}, 101, "$T: 101";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame(payload => 'h2c listener'));
is $c->read_data(12, 5), 'h2c listener', "$T: echo";
--- no_error_log
[error]
[alert]



=== TEST 3: an upstream group without a keepalive directive: every session gets its own connection
Since nginx 1.29.7 the group keeps idle connections by default; a VNC connection must end
with its session, never serve the next one.
--- http_config
    upstream vnc { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- config
    location /ws { websockify_pass vnc; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
for my $i (1 .. 2) {
    my $c = ws_connect();
    is $c->{status}, 101, "$T: session $i: 101";
    is $c->read_data(12, 5), "RFB 003.008\n", "$T: session $i: banner of a fresh connection";
    $c->send(ws_close_frame(1000));
    close_ok($c, 1000, "session $i: close reply", 3);
    $c->close;
    ok wait_until(sub { $t->eof($i) }, 5), "$T: session $i: its target connection was closed";
}
is $t->connections, 2, "$T: two sessions, two target connections";
--- no_error_log
[error]
[alert]
