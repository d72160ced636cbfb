# WebSocket handshake: accepted forms, subprotocol negotiation, rejected requests
# (the target must never be connected for those).
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: handshake without subprotocol (today's noVNC): 101, accept key, no protocol header
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect(key => 'dGhlIHNhbXBsZSBub25jZQ==');
is $c->{status}, 101, "$T: status";
like $c->{status_line}, qr{^HTTP/1\.1 101 Switching Protocols\s*$}, "$T: status line";
is lc($c->{headers}{upgrade} // ''), 'websocket', "$T: Upgrade";
is lc($c->{headers}{connection} // ''), 'upgrade', "$T: Connection";
is $c->{headers}{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', "$T: accept key";
ok !exists $c->{headers}{'sec-websocket-protocol'}, "$T: no Sec-WebSocket-Protocol";
my $f = $c->read_frame(5);
is $f && $f->{opcode}, 2, "$T: banner comes as a binary frame";
is $f && $f->{payload}, "RFB 003.008\n", "$T: banner bytes";
ok $f && !$f->{masked}, "$T: server frame is unmasked";
is $t->connections, 1, "$T: one target connection";
$c->send(ws_close_frame(1000));
close_ok($c, 1000, 'close reply');
--- no_error_log
[error]



=== TEST 2: client offers binary -> binary
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n", echo => 1);
my $c = ws_connect(protocol => 'binary');
is $c->{status}, 101, "$T: status";
is $c->{headers}{'sec-websocket-protocol'}, 'binary', "$T: protocol binary";
is $c->{headers}{'sec-websocket-accept'}, ws_accept($c->{key}), "$T: accept key";
is $c->read_data(12, 5), "RFB 003.008\n", "$T: banner";
$c->send(ws_frame("hello"));
is $c->read_data(5, 5), "hello", "$T: echo";
is_deeply [sort keys %{ $c->{data_opcodes} }], [2], "$T: binary frames only";
--- no_error_log
[error]
[alert]



=== TEST 3: client offers "base64, binary" -> binary is preferred
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
my $c = ws_connect(protocol => 'base64, binary');
is $c->{status}, 101, "$T: status";
is $c->{headers}{'sec-websocket-protocol'}, 'binary', "$T: protocol binary";
my $f = $c->read_frame(5);
is $f && $f->{opcode}, 2, "$T: binary frame";
is $f && $f->{payload}, "RFB 003.008\n", "$T: raw banner";



=== TEST 4: client offers only base64 -> base64 mode both ways
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n\x00\xff\x80");
my $c = ws_connect(protocol => 'base64');
is $c->{status}, 101, "$T: status";
is $c->{headers}{'sec-websocket-protocol'}, 'base64', "$T: protocol base64";
my $f = $c->read_frame(5);
is $f && $f->{opcode}, 1, "$T: text frame";
like $f && $f->{payload}, qr{^[A-Za-z0-9+/]+=*$}, "$T: payload is base64";
is decode_base64($f ? $f->{payload} : ''), "RFB 003.008\n\x00\xff\x80", "$T: decodes to the banner";
$c->send(ws_frame(opcode => 1, payload => encode_base64("RFB 003.008\n", '')));
$c->send(ws_frame(opcode => 1, payload => encode_base64("\x01\x02\xfe\xff", '')));
is $t->wait_data(16, 5), "RFB 003.008\n\x01\x02\xfe\xff", "$T: target got decoded bytes";



=== TEST 5: Connection token list, case-insensitive header values
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
for my $h (
    { Connection => 'keep-alive, Upgrade' },
    { Connection => 'upgrade' },
    { Connection => 'UPGRADE,keep-alive', Upgrade => 'WebSocket' },
    { Connection => 'keep-alive ,  upgrade' },
) {
    my $c = ws_connect(headers => $h);
    is $c->{status}, 101, "$T: 101 for " . join(' ', %$h);
    is $c->{headers}{'sec-websocket-accept'}, ws_accept($c->{key}), "$T: accept key";
    is $c->read_data(1, 5), 'X', "$T: banner relayed";
    $c->close;
}
ok $t->wait_connections(4, 5), "$T: four target connections";



=== TEST 6: POST -> 400, target not connected
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw(ws_request(method => 'POST', headers => { 'Content-Length' => 0 }));
is $c->{status}, 400, "$T: status";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- error_log eval
WsTest::log_line(info => 'websockify: bad handshake: method is not GET')



=== TEST 7: no Sec-WebSocket-Key -> 400
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw(ws_request(headers => { 'Sec-WebSocket-Key' => undef }));
is $c->{status}, 400, "$T: status";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- error_log eval
WsTest::log_line(info => 'websockify: bad handshake: missing or repeated Sec-WebSocket-Key')



=== TEST 8: Sec-WebSocket-Key not 16 bytes / not base64 -> 400
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
for my $key (encode_base64('12345678', ''), encode_base64('x' x 17, ''), '!!!!notbase64!!!!!!!!!==') {
    my $c = http_raw(ws_request(key => $key));
    is $c->{status}, 400, "$T: status for key $key";
}
my $line = log_line(info => 'websockify: bad handshake: Sec-WebSocket-Key is not 16 bytes of base64');
is scalar(() = error_log_text() =~ /$line/g), 3, "$T: one info line per key";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";



=== TEST 9: missing Upgrade header -> 400
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw(ws_request(headers => { Upgrade => undef, Connection => 'keep-alive' }));
is $c->{status}, 400, "$T: no Upgrade";
$c = http_raw(ws_request(headers => { Upgrade => 'h2c' }));
is $c->{status}, 400, "$T: Upgrade: h2c";
my $line = log_line(info => 'websockify: bad handshake: missing "Upgrade: websocket"');
is scalar(() = error_log_text() =~ /$line/g), 2, "$T: one info line per request";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";



=== TEST 10: Connection without the upgrade token -> 400 (no prefix matching)
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
for my $conn ('keep-alive', 'upgrades', 'close, upgrade-insecure') {
    my $c = http_raw(ws_request(headers => { Connection => $conn }));
    is $c->{status}, 400, "$T: Connection: $conn";
}
my $c = http_raw(ws_request(headers => { Connection => undef }));
is $c->{status}, 400, "$T: no Connection header";
my $line = log_line(info => 'websockify: bad handshake: missing "Connection: upgrade"');
is scalar(() = error_log_text() =~ /$line/g), 4, "$T: one info line per request";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";



=== TEST 11: HTTP/1.0 -> 400
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
my $c = http_raw(ws_request(version => 'HTTP/1.0'));
is $c->{status}, 400, "$T: status";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- error_log eval
WsTest::log_line(info => 'websockify: bad handshake: WebSocket needs HTTP/1.1')



=== TEST 12: wrong Sec-WebSocket-Version -> 426 with Sec-WebSocket-Version: 13
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "X");
for my $v ('8', '14') {
    my $c = http_raw(ws_request(headers => { 'Sec-WebSocket-Version' => $v }));
    is $c->{status}, 426, "$T: status for version $v";
    is $c->{headers}{'sec-websocket-version'}, '13', "$T: Sec-WebSocket-Version: 13";
}
my $line = log_line(info => 'websockify: bad handshake: unsupported Sec-WebSocket-Version');
is scalar(() = error_log_text() =~ /$line/g), 2, "$T: one info line per request";
my $c = http_raw(ws_request(headers => { 'Sec-WebSocket-Version' => undef }));
is $c->{status}, 400, "$T: missing version -> 400";
ok !exists $c->{headers}{'sec-websocket-version'}, "$T: no Sec-WebSocket-Version with the 400";
sleep 0.3;
is $t->connections, 0, "$T: target never connected";
--- error_log eval
WsTest::log_line(info => 'websockify: bad handshake: missing Sec-WebSocket-Version')



=== TEST 13: bad handshake is logged at info level, not as an error
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $c = http_raw(ws_request(headers => { Upgrade => undef }));
is $c->{status}, 400, "$T: status";
--- error_log eval
WsTest::log_line(info => 'websockify: bad handshake: missing "Upgrade: websocket"')
--- no_error_log
[error]



=== TEST 14: subprotocol names match case-sensitively: the answer is an offered value, byte for byte
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "RFB 003.008\n");
# offered => [answered Sec-WebSocket-Protocol or undef, opcode of the banner frame]
for my $case (
    ['BINARY'          => undef,    2],
    ['Binary'          => undef,    2],
    ['BASE64'          => undef,    2],
    ['Base64, BINARY'  => undef,    2],
    ['BINARY, base64'  => 'base64', 1],
    ['BASE64, binary'  => 'binary', 2],
) {
    my ($offer, $answer, $op) = @$case;
    my $c = ws_connect(protocol => $offer);
    is $c->{status}, 101, "$T: $offer: 101";
    is $c->{headers}{'sec-websocket-protocol'}, $answer,
        "$T: $offer: answered " . ($answer // 'no Sec-WebSocket-Protocol');
    my $f = $c->read_frame(5);
    is $f && $f->{opcode}, $op, "$T: $offer: banner in a frame of opcode $op";
    my $banner = $f && ($op == 1 ? decode_base64($f->{payload}) : $f->{payload});
    is $banner, "RFB 003.008\n", "$T: $offer: banner";
    $c->close;
}
