# websockify_allow_origin: a listed Origin -> 101; a foreign one -> 403, an info-level
# error_log line, and the target is never opened; `same` (Origin's host:port equals the
# Host header); requests without Origin (non-browser clients) pass; inheritance.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

package WsTest::Run {
    use Test::More;
    use Time::HiRes qw(time sleep);
    BEGIN { WsTest->import }

    # try(path, Host or undef for the default, Origin or undef for none, expected status)
    sub try {
        my ($path, $host, $origin, $want) = @_;
        my $before = length error_log_text();
        my $c = ws_connect(path => $path, (defined $host ? (host => $host) : ()),
            headers => { Origin => $origin });
        my $what = "$path, Host " . ($host // 'localhost') . ", Origin " . ($origin // '(none)');
        is $c->{status}, $want, "$WsTest::T: $what -> $want";
        my $log = substr(error_log_text(), $before);
        if ($want == 403) {
            like $log,
                qr/\[info\].*websockify: bad handshake: origin not allowed by websockify_allow_origin/,
                "$WsTest::T: $what: logged";
        } else {
            is $c->read_data(3, 5), "hi\n", "$WsTest::T: $what: banner";
        }
        return $c;
    }
}
package main;

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: listed origins pass, others get 403 and never reach the target
--- config
    location /ws {
        websockify_allow_origin https://desk.example.com http://localhost:8080;
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "hi\n");
try('/ws', undef, 'https://desk.example.com', 101);
try('/ws', undef, 'HTTPS://Desk.Example.COM', 101);
try('/ws', undef, 'http://localhost:8080', 101);
try('/ws', undef, undef, 101);
my $n = $t->connections;
try('/ws', undef, 'https://evil.example', 403);
try('/ws', undef, 'http://desk.example.com', 403);           # other scheme
try('/ws', undef, 'https://desk.example.com:8443', 403);     # other port
try('/ws', undef, 'https://desk.example.com.evil.example', 403);
try('/ws', undef, 'http://localhost', 403);
try('/ws', undef, 'null', 403);
try('/ws', 'desk.example.com', 'https://evil.example', 403); # Host does not matter here
sleep 0.2;
is $t->connections, $n, "$T: refused handshakes opened no target connection";
--- no_error_log
[error]



=== TEST 2: same: the Origin's host:port must equal the Host header
--- config
    location /ws {
        websockify_allow_origin same;
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "hi\n");
try('/ws', 'localhost', 'http://localhost', 101);
try('/ws', 'localhost', 'https://localhost', 101);
try('/ws', 'desk.example.com:6080', 'http://desk.example.com:6080', 101);
try('/ws', 'Desk.Example.com', 'https://desk.example.com', 101);
try('/ws', 'localhost', undef, 101);
my $n = $t->connections;
try('/ws', 'localhost', 'http://evil.example', 403);
try('/ws', 'localhost', 'http://localhost:8080', 403);
try('/ws', 'desk.example.com:6080', 'http://desk.example.com', 403);
try('/ws', 'desk.example.com', 'http://desk.example.com.evil.example', 403);
try('/ws', 'localhost', 'null', 403);
sleep 0.2;
is $t->connections, $n, "$T: refused handshakes opened no target connection";
--- no_error_log
[error]



=== TEST 3: same plus a listed origin; server-level list inherited, a location's own replaces it
--- config
    websockify_allow_origin https://portal.example.com;
    location /inherit { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    location /own {
        websockify_allow_origin same https://admin.example.com;
        websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "hi\n");
try('/inherit', undef, 'https://portal.example.com', 101);
try('/inherit', undef, 'http://localhost', 403);
try('/own', undef, 'http://localhost', 101);
try('/own', undef, 'https://admin.example.com', 101);
try('/own', undef, 'https://portal.example.com', 403);
--- no_error_log
[error]



=== TEST 4: no websockify_allow_origin: any Origin passes
--- config
    location /ws { websockify_pass 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
--- ws_test
my $t = mock_target(port => rand_port(1), banner => "hi\n");
try('/ws', undef, 'https://anything.example', 101);
try('/ws', undef, undef, 101);
--- no_error_log
[error]



=== TEST 5: invalid values stop nginx with a message
--- config
    location /ws {
        websockify_allow_origin desk.example.com;
        websockify_pass 127.0.0.1:5900;
    }
--- must_die
--- error_log
invalid value "desk.example.com" in "websockify_allow_origin" directive
