package WsRecipes;

# Helpers for the target-selection recipe tests (t/1*-*.t), on top of WsTest.
#
# * $ENV{TEST_NGINX_REPO}: the repository root, so a config block can
#   `include $TEST_NGINX_REPO/nginx-conf/FILE;` (Test::Nginx expands TEST_NGINX_* vars).
# * $ENV{TEST_NGINX_VNC_PORT_1..4}: free TCP ports on 127.0.0.1 inside 5900-5999, for
#   recipes whose allow rule is `127.0.0.1 5900-5999` (chosen once per test file).
# * recipe(FILE, LITERAL => REPLACEMENT, ...): the text of nginx-conf/FILE with literal
#   values replaced (dies when a literal is no longer in the file), for `--- http_config eval`.
# * lua_skip_reason(): why the lua module cannot be used here (undef when it can).
# * mock_dns(port => N, a => {name => [ip...]}, aaaa => {...}): a forked UDP DNS responder
#   on 127.0.0.1; NXDOMAIN for other names; ->queries lists the names asked.
# * mock_target6(port => N, ...): WsTest::mock_target on [::1].
# * redis_start() / redis_stop() / redis_cmd(...): a throwaway redis-server on 127.0.0.1.
# Every process started here is registered with WsTest (stopped at the end of the block)
# or stopped in END.

use strict;
use warnings;

use WsTest ();
use IO::Socket::INET;
use IO::Socket::IP;
use IO::Select;
use Socket ();
use POSIX ();
use Cwd ();
use File::Temp ();
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT = qw(recipe repo_root lua_skip_reason lua_main_config mock_dns mock_target6
    vnc_port free_port ipv6_skip_reason redis_start redis_stop redis_cmd redis_port
    redis_skip_reason sign_url nginx_module_skip_reason);

my $ROOT = do {
    my $f = Cwd::abs_path(__FILE__);
    $f =~ s{/t/lib/WsRecipes\.pm$}{};
    $f;
};
$ENV{TEST_NGINX_REPO} = $ROOT;
sub repo_root () { $ROOT }

# ---------------------------------------------------------------- ports

sub _port_free {
    my ($port, $addr) = @_;
    my $s = IO::Socket::IP->new(LocalHost => $addr // '127.0.0.1', LocalPort => $port,
        Listen => 1, ReuseAddr => 0, Proto => 'tcp');
    return 0 if !$s;
    close $s;
    return 1;
}

my %taken;

# A free port in [lo, hi] on 127.0.0.1, not handed out before by this process.
sub free_port {
    my ($lo, $hi) = @_;
    ($lo, $hi) = (20000, 60000) if !defined $lo;
    for (1 .. 500) {
        my $p = $lo + int(rand($hi - $lo + 1));
        next if $taken{$p};
        next if !_port_free($p);
        $taken{$p} = 1;
        return $p;
    }
    die "no free port in $lo-$hi\n";
}

for my $i (1 .. 4) {
    $ENV{"TEST_NGINX_VNC_PORT_$i"} //= free_port(5900, 5999);
}
sub vnc_port ($) { $ENV{"TEST_NGINX_VNC_PORT_$_[0]"} }

# ---------------------------------------------------------------- recipes

sub recipe {
    my ($file, @subst) = @_;
    my $path = "$ROOT/nginx-conf/$file";
    my $text = WsTest::slurp($path);
    die "cannot read $path\n" if !defined $text;
    while (my ($from, $to) = splice @subst, 0, 2) {
        my $n = ($text =~ s/\Q$from\E/$to/g);
        die "nginx-conf/$file no longer contains \"$from\"\n" if !$n;
    }
    return $text;
}

# ---------------------------------------------------------------- lua

my $LUA_DIR = '/usr/lib/nginx/modules';

sub lua_skip_reason () {
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    if ($bin !~ m{/}) {
        ($bin) = grep { -x } map { "$_/$bin" } split /:/, $ENV{PATH} // '';
        $bin //= '';
    }
    return "the lua module only fits Debian's nginx (TEST_NGINX_BINARY=/usr/sbin/nginx)"
        if $bin ne '/usr/sbin/nginx';
    for my $so ("$LUA_DIR/ndk_http_module.so", "$LUA_DIR/ngx_http_lua_module.so") {
        return "$so is missing (apt install libnginx-mod-http-lua)" if !-f $so;
    }
    return undef;
}

sub lua_main_config () {
    return "load_module $LUA_DIR/ndk_http_module.so;\n"
        . "load_module $LUA_DIR/ngx_http_lua_module.so;\n"
        . "load_module $ENV{TEST_NGINX_WEBSOCKIFY_SO};\n";
}

# scripts/sign-url ARGS... -> its output line (dies on failure)
sub sign_url {
    my @args = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        exec("$ROOT/scripts/sign-url", @args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    die "scripts/sign-url @args failed: exit " . ($? >> 8) . "\n" if $?;
    $out =~ s/\n\z//;
    return $out;
}

# Why nginx (TEST_NGINX_BINARY) lacks `--with-http_NAME_module` (undef when it has it).
sub nginx_module_skip_reason ($) {
    my $name = shift;
    my $bin = $ENV{TEST_NGINX_BINARY} // 'nginx';
    my $v = `$bin -V 2>&1`;
    return undef if $v =~ /--with-http_${name}_module\b/;
    return "$bin is built without --with-http_${name}_module";
}

# ---------------------------------------------------------------- IPv6

sub ipv6_skip_reason () {
    my $s = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1,
        Proto => 'tcp');
    return "IPv6 loopback (::1) unavailable: $@" if !$s;
    close $s;
    return undef;
}

sub mock_target6 {
    my %o = @_;
    my $dir = File::Temp::tempdir('target6-XXXXXX', DIR => WsTest::ws_tmp(), CLEANUP => 1);
    my $listen = IO::Socket::IP->new(LocalHost => '::1', LocalPort => $o{port},
        Listen => 64, ReuseAddr => 1, Proto => 'tcp')
        or die "mock target: cannot listen on [::1]:$o{port}: $@\n";
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        my $ok = eval { WsTest::_target_main($listen, $dir, \%o); 1 };
        POSIX::_exit($ok ? 0 : 1);
    }
    my $t = bless { pid => $pid, dir => $dir, opts => \%o, listen => $listen },
        'WsTest::Target';
    push @WsTest::TARGETS, $t;
    return $t;
}

# ---------------------------------------------------------------- DNS

sub mock_dns {
    my %o = @_;
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $o{port},
        Proto => 'udp', ReuseAddr => 1)
        or die "mock dns: cannot bind udp 127.0.0.1:$o{port}: $!\n";
    my $log = File::Temp::tempdir('dns-XXXXXX', DIR => WsTest::ws_tmp(), CLEANUP => 1)
        . "/queries";
    open my $touch, '>', $log; close $touch;
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        $SIG{ALRM} = 'DEFAULT';
        alarm 0;
        eval { _dns_main($sock, $log, $o{a} // {}, $o{aaaa} // {}) };
        POSIX::_exit(0);
    }
    my $d = bless { pid => $pid, log => $log, sock => $sock }, 'WsRecipes::Dns';
    push @WsTest::TARGETS, $d;
    return $d;
}

sub _dns_main {
    my ($sock, $log, $a, $aaaa) = @_;
    while (1) {
        my $peer = $sock->recv(my $q, 1500) // next;
        next if length $q < 17;
        my ($id, $flags, $qd) = unpack('n n n', $q);
        # question: labels, then qtype, qclass
        my $off = 12;
        my @labels;
        while ($off < length $q) {
            my $len = ord substr($q, $off, 1);
            $off++;
            last if $len == 0;
            push @labels, substr($q, $off, $len);
            $off += $len;
        }
        next if $off + 4 > length $q;
        my ($qtype, $qclass) = unpack('n n', substr($q, $off, 4));
        my $question = substr($q, 12, $off + 4 - 12);
        my $name = lc join '.', @labels;
        open my $l, '>>', $log;
        print $l "$name $qtype\n";
        close $l;
        my $known = exists $a->{$name} || exists $aaaa->{$name};
        my @ans;
        if ($qtype == 1) {
            @ans = map { pack('n n n N n', 0xc00c, 1, 1, 1, 4) . pack('C4', split /\./) }
                @{ $a->{$name} // [] };
        } elsif ($qtype == 28) {
            @ans = map {
                pack('n n n N n', 0xc00c, 28, 1, 1, 16) . Socket::inet_pton(Socket::AF_INET6(), $_)
            } @{ $aaaa->{$name} // [] };
        }
        my $rflags = 0x8180 | ($known ? 0 : 3);    # QR RD RA, NXDOMAIN when unknown
        my $resp = pack('n n n n n n', $id, $rflags, 1, scalar @ans, 0, 0) . $question
            . join('', @ans);
        $sock->send($resp, 0, $peer);
    }
}

package WsRecipes::Dns;

sub queries {
    my $self = shift;
    my $d = WsTest::slurp($self->{log}) // '';
    return map { (split / /)[0] } split /\n/, $d;
}

sub stop {
    my $self = shift;
    return if !$self->{pid};
    kill 'KILL', -$self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
    close $self->{sock} if $self->{sock};
    delete $self->{sock};
}

sub DESTROY { $_[0]->stop }

package WsRecipes;

# ---------------------------------------------------------------- redis

my ($REDIS_PID, $REDIS_PORT, $REDIS_DIR);

sub redis_skip_reason () {
    for my $dir (split /:/, $ENV{PATH} // '/usr/bin') {
        return undef if -x "$dir/redis-server";
    }
    return "redis-server is not installed (apt install redis-server)";
}

sub redis_port () { $REDIS_PORT }

sub redis_start () {
    return $REDIS_PORT if $REDIS_PID;
    $REDIS_PORT = free_port();
    $REDIS_DIR = File::Temp::tempdir('redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDOUT, '>', "$REDIS_DIR/redis.log";
        open STDERR, '>&', \*STDOUT;
        exec('redis-server', '--port', $REDIS_PORT, '--bind', '127.0.0.1',
            '--save', '', '--appendonly', 'no', '--dir', $REDIS_DIR, '--daemonize', 'no',
            '--protected-mode', 'yes', '--loglevel', 'warning')
            or POSIX::_exit(127);
    }
    $REDIS_PID = $pid;
    my $up = WsTest::wait_until(sub {
        my $r = eval { redis_cmd('PING') };
        defined $r && $r eq 'PONG';
    }, 10);
    if (!$up) {
        my $log = WsTest::slurp("$REDIS_DIR/redis.log") // '';
        redis_stop();
        die "redis-server did not start on 127.0.0.1:$REDIS_PORT: $log\n";
    }
    return $REDIS_PORT;
}

sub redis_stop () {
    return if !$REDIS_PID;
    kill 'TERM', $REDIS_PID;
    my $gone = WsTest::wait_until(sub { waitpid($REDIS_PID, POSIX::WNOHANG()) == $REDIS_PID }, 5);
    if (!$gone) {
        kill 'KILL', $REDIS_PID;
        waitpid($REDIS_PID, 0);
    }
    undef $REDIS_PID;
}

# One command in RESP; returns the reply (simple string, integer, bulk string, or
# undef for a nil bulk); dies on an error reply.
sub redis_cmd {
    my @args = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $REDIS_PORT,
        Proto => 'tcp', Timeout => 2) or die "redis: connect: $!\n";
    my $req = '*' . @args . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
    print $s $req;
    my $line = <$s> // die "redis: no reply\n";
    $line =~ s/\r\n$//;
    my $type = substr($line, 0, 1, '');
    if ($type eq '+' || $type eq ':') { return $line }
    if ($type eq '-') { die "redis: $line\n" }
    if ($type eq '$') {
        return undef if $line < 0;
        my $data = '';
        read($s, $data, $line + 2);
        return substr($data, 0, $line);
    }
    die "redis: unexpected reply type $type\n";
}

END { redis_stop() }

1;
