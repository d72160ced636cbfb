# The connect phase as nginx's upstream module does it: a resolver answer from its cache
# (the handler called inside ngx_resolve_name) that ends the request.
use lib 't/lib';
use Test::Nginx::Socket;
use WsTest;
use WsRecipes;
{ package WsTest::Run; WsRecipes->import; }

run_tests();
Test::More::done_testing();

__DATA__

=== TEST 1: a cached resolver answer that ends the request (403 -> error_page -> 444)
The second and third requests are answered from the resolver's cache: the resolve handler
runs inside ngx_resolve_name(), under the content handler. Ending the request there must
not free it under the content handler ("http request count is zero").
--- http_config
    resolver 127.0.0.1:$TEST_NGINX_RAND_PORT_9 ipv6=off valid=300s;
    resolver_timeout 3s;
--- config
    location /ws {
        set $vnc_host vnc.test;
        websockify_pass $vnc_host:$TEST_NGINX_RAND_PORT_1;
        # a network rule lets the name be resolved; its address is then refused: 403
        websockify_allow 10.0.0.0/8;
        error_page 403 502 = @gone;
    }
    location @gone { return 444; }
--- ws_test
my $dns = mock_dns(port => rand_port(9), a => { 'vnc.test' => ['127.0.0.1'] });
my $t = mock_target(port => rand_port(1), banner => "X");
for my $i (1 .. 3) {
    my $c = http_raw(ws_request(), timeout => 5);
    ok !defined $c->{status} && $c->{eof}, "$T: request $i: closed without a response (444)";
}
is scalar(grep { $_ eq 'vnc.test' } $dns->queries), 1, "$T: one DNS query, then the cache";
sleep 0.2;
is $t->connections, 0, "$T: the refused address was never connected";
my $log = error_log_text();
is scalar(() = $log =~ /websockify: target "vnc\.test:\d+" is not allowed/g), 3,
    "$T: one refusal line per request";
--- no_error_log
[alert]
[crit]
request count is zero
