package WsTest;

# Helpers for the ngx-websockify integration tests (Test::Nginx::Socket).
#
# * Every block gets `load_module $TEST_NGINX_WEBSOCKIFY_SO;` in --- main_config.
# * A block may carry a `--- ws_test` section: Perl code run after nginx has started
#   (and after the trivial `GET /ok` request the preprocessor adds), before the
#   error_log/access_log checks.  It drives raw WebSocket clients (ws_connect) and
#   mock TCP targets (mock_target) and asserts with Test::More.  In that code,
#   $T is the block name, to prefix test names with.
# * Mock targets are forked Perl processes listening on 127.0.0.1 (or a unix
#   socket); they record every connection, the bytes received and whether EOF was
#   seen, into files.  They are killed at the end of the block (and in END).
# * Every block fails when its error log shows a fault: `[alert]`, `[crit]`, `[emerg]`,
#   or a worker that exited on a signal or with a non-zero code, unless the block's
#   `--- error_log` expects that level (or `--- must_die` expects `[emerg]`).  nginx
#   runs with a master process so that a crashed worker is logged and replaced, and
#   the log is read once more after the block's own checks.

use strict;
use warnings;

use Test::Nginx::Socket ();
use Test::More ();
use IO::Socket::INET;
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOL_SOCKET SO_RCVBUF SO_SNDBUF IPPROTO_TCP TCP_NODELAY);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use POSIX ();
use File::Temp ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Digest::SHA qw(sha1 sha512 sha1_hex);
use Time::HiRes qw(time sleep);

use Exporter 'import';
our @EXPORT = qw(
    ws_frame ws_close_frame ws_parse_frame ws_request ws_accept ws_key
    ws_connect http_raw mock_target prng_bytes rand_port server_port_client
    ws_tmp wait_until slurp describe_diff error_log_text access_log_text fill_backlog
    nginx_worker_pids worker_rss_kb close_ok log_line error_log_count nginx_at_least
    spawn_server
);

our $T;    # current block name, for test names
our @TARGETS;    # live mock targets

my $GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

# ---------------------------------------------------------------- environment

$ENV{TEST_NGINX_WEBSOCKIFY_SO} //= do {
    my $root = __FILE__;
    $root =~ s{t/lib/WsTest\.pm$}{};
    $root = '.' if $root eq '';
    require Cwd;
    Cwd::abs_path("$root/build/debian") . "/ngx_http_websockify_module.so";
};

my $TMP = File::Temp::tempdir('ngx-ws-XXXXXX', TMPDIR => 1, CLEANUP => 1);
$ENV{TEST_NGINX_WS_TMP} = $TMP;
sub ws_tmp () { $TMP }

$SIG{PIPE} = 'IGNORE';

Test::Nginx::Socket::no_shuffle();

# Without a master a crashed worker takes nginx down and logs nothing; valgrind runs
# (Test::Nginx forces the master off there) see crashes in valgrind's own report.
Test::Nginx::Socket::master_on() if !$Test::Nginx::Util::UseValgrind;

# Error log lines that fail a block unless it expects them (level => pattern).
my @FAULTS = (
    [alert => '[alert]'],
    [crit  => '[crit]'],
    [emerg => '[emerg]'],
    [undef, 'exited on signal'],
    [undef, qr/worker process \d+ exited with (?:fatal )?code [1-9]/],
);
my @BLOCK_FAULTS;    # the patterns the current block must not log
my $BLOCK_OK;        # the current block has the preprocessor's `location = /ok`

sub _as_list ($) {
    my $v = shift;
    return () if !defined $v;
    return @$v if ref $v eq 'ARRAY';
    return ($v) if ref $v;
    return grep { length } split /\n+/, $v;
}

# True when a section (string, regexp or list) names the level, as text or as a regexp.
sub _mentions_level ($$) {
    my ($v, $level) = @_;
    return scalar grep { "$_" =~ /\\?\[\Q$level\E/ } _as_list($v);
}

sub _block_faults ($) {
    my $block = shift;
    my @f;
    for my $fault (@FAULTS) {
        my ($level, $pat) = @$fault;
        if (defined $level) {
            next if _mentions_level($block->error_log, $level);
            next if $level eq 'emerg' && defined $block->must_die;
        } elsif (!ref $pat) {
            # A block that kills a worker on purpose names the line in --- error_log.
            next if grep { index("$_", $pat) >= 0 } _as_list($block->error_log);
        }
        push @f, $pat;
    }
    return @f;
}

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    @BLOCK_FAULTS = _block_faults($block);
    my @no = _as_list($block->no_error_log);
    for my $pat (@BLOCK_FAULTS) {
        push @no, $pat if !grep { "$_" eq "$pat" } @no;
    }
    $block->set_value('no_error_log', \@no);
    $BLOCK_OK = 0;

    if (!defined $block->main_config) {
        $block->set_value('main_config', 'load_module $TEST_NGINX_WEBSOCKIFY_SO;');
    }

    if (defined $block->must_die && !defined $block->suppress_stderr) {
        $block->set_value('suppress_stderr', 1);
    }

    if (!defined $block->request && !defined $block->raw_request) {
        $block->set_value('request', "GET /ok\n");
        $block->set_value('response_body', "ok\n") unless defined $block->response_body
            || defined $block->response_body_like;
        my $config = $block->config // '';
        $config .= "\n    location = /ok { return 200 \"ok\\n\"; }\n";
        $block->set_value('config', $config);
        $BLOCK_OK = 1;
    }
});

# Faults logged after the block's error log was checked (a worker that crashed while
# its last sessions ended) still fail the block.
Test::Nginx::Socket::add_test_cleanup_handler(sub {
    my $block = shift;
    my $lines = Test::Nginx::Util::error_log_data() // [];
    for my $line (@$lines) {
        for my $pat (@BLOCK_FAULTS) {
            next if !(ref $pat ? $line =~ $pat : index($line, $pat) >= 0);
            chomp(my $l = $line);
            Test::More::fail($block->name . " - after the checks, the error log shows: $l");
            last;
        }
    }
});

# After a ws_test: one more request, answered only after the worker went through the
# events of the sessions that just ended, so that a crash there is in the log when
# Test::Nginx reads it.
sub _still_serving () {
    my $c = eval {
        http_raw("GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            timeout => 5);
    };
    Test::More::is($c && $c->{status}, 200, "$T - nginx still answers after the ws_test");
}

Test::Nginx::Socket::add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    my $code = $block->ws_test;
    return unless defined $code;
    my $name = $block->name;
    if ($dry_run) {
      SKIP: { Test::More::skip("$name - ws_test skipped due to $dry_run", 1) }
        return;
    }
    local $T = $name;
    my $limit = $block->ws_timeout // 40;
    my $ok = eval {
        local $SIG{ALRM} = sub { die "ws_test timed out after ${limit}s\n" };
        alarm $limit;
        my $sub = eval "package WsTest::Run; use strict; use warnings; use Test::More;"
            . " use MIME::Base64; use Time::HiRes qw(time sleep); BEGIN { WsTest->import }"
            . " our \$T; *T = \\\$WsTest::T;\n"
            . "sub {\n#line 1 \"$name ws_test\"\n$code\n}";
        die "compiling ws_test: $@" if !$sub;
        $sub->();
        alarm 0;
        1;
    };
    alarm 0;
    if (!$ok) {
        Test::More::fail("$name - ws_test died: $@");
    }
    stop_all_targets();
    _still_serving() if $BLOCK_OK;
});

END { stop_all_targets() }

sub rand_port ($) {
    my $n = shift;
    my $p = $Test::Nginx::Util::RandPorts->{"TEST_NGINX_RAND_PORT_$n"};
    die "TEST_NGINX_RAND_PORT_$n is not used in this block's config\n" if !defined $p;
    return $p;
}

sub server_port_client () { Test::Nginx::Util::server_port_for_client() }

# nginx_at_least('1.31.0'): whether the nginx under test is that version or newer.
sub nginx_at_least ($) {
    my $bin = $ENV{TEST_NGINX_BINARY} || 'nginx';
    my ($v) = `$bin -v 2>&1` =~ m{nginx/(\d+\.\d+\.\d+)};
    my $num = sub { sprintf '%03d%03d%03d', split /\./, $_[0] };
    return defined $v && $num->($v) ge $num->($_[0]);
}

sub wait_until (&$) {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return undef if time >= $deadline;
        sleep 0.02;
    }
}

sub slurp ($) {
    my $f = shift;
    open my $fh, '<:raw', $f or return undef;
    local $/;
    my $d = <$fh>;
    return $d // '';
}

# Error log written since this block started (does not move Test::Nginx's position).
sub error_log_text () {
    my $d = slurp($Test::Nginx::Util::ErrLogFile) // '';
    my $pos = $Test::Nginx::Util::ErrLogFilePos || 0;
    return substr($d, $pos > length $d ? 0 : $pos);
}

# How many lines of error_log_text() match the regexp.
sub error_log_count ($) {
    my $re = shift;
    return scalar grep { $_ =~ $re } split /\n/, error_log_text();
}

# A regexp for one error_log line of a connection: exactly this level and message,
# then nginx's context (an optional " while <action>", then ", client: ").
sub log_line ($$) {
    my ($level, $msg) = @_;
    return qr/\[\Q$level\E\] \d+#\d+: \*\d+ \Q$msg\E(?: while [^,\n]*)?, client: /;
}

# Content of logs/NAME under the server root (e.g. a custom access_log).
sub access_log_text ($) {
    return slurp(Test::Nginx::Util::server_root() . "/logs/$_[0]") // '';
}

# The pids of nginx's worker processes (the master's children; nginx itself when it
# runs without a master).
sub nginx_worker_pids () {
    my $master = slurp($Test::Nginx::Util::PidFile) // '';
    ($master) = $master =~ /(\d+)/ or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $d = slurp($stat) // next;
        # pid (comm) state ppid: comm may hold spaces, so split after its last ')'
        my ($pid, $rest) = $d =~ /^(\d+) \(.*\) (.*)$/s or next;
        my (undef, $ppid) = split / /, $rest;
        push @w, $pid if $ppid == $master;
    }
    return @w ? sort { $a <=> $b } @w : ($master);
}

# VmRSS of a process in kB (undef when it is gone).
sub worker_rss_kb ($) {
    my $status = slurp("/proc/$_[0]/status") // return undef;
    return $status =~ /^VmRSS:\s+(\d+) kB/m ? $1 : undef;
}

# Fills the accept queue of a listener that never accepts (mock_target(backlog =>
# 1, no_accept => 1)), so that further connects hang: a connect timeout on loopback.
sub fill_backlog ($;$) {
    my ($port, $n) = @_;
    my @s;
    for (1 .. ($n // 6)) {
        push @s, IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
            Blocking => 0);
        sleep 0.05;
    }
    return \@s;
}

# Deterministic pseudo-random bytes: SHA-512 in counter mode.
sub prng_bytes ($$) {
    my ($seed, $len) = @_;
    my $out = '';
    my $i = 0;
    while (length($out) < $len) {
        $out .= sha512("$seed:" . $i++);
    }
    return substr($out, 0, $len);
}

# Short description of where two byte strings differ (for failure messages).
sub describe_diff ($$) {
    my ($got, $exp) = @_;
    return "identical" if $got eq $exp;
    my $n = length($got) < length($exp) ? length($got) : length($exp);
    my $i = 0;
    # coarse then fine search for the first difference
    my $step = 4096;
    while ($i + $step <= $n && substr($got, $i, $step) eq substr($exp, $i, $step)) { $i += $step }
    while ($i < $n && substr($got, $i, 1) eq substr($exp, $i, 1)) { $i++ }
    return sprintf("got %d bytes, expected %d; first difference at offset %d", length $got,
        length $exp, $i);
}

# ---------------------------------------------------------------- framing

# ws_frame(opcode => 2, payload => '...', fin => 1, rsv => 0, mask => 1,
#          key => 4 bytes, len => 7|16|64 (force length encoding))
sub ws_frame {
    my %o = @_ == 1 ? (payload => $_[0]) : @_;
    my $payload = $o{payload} // '';
    my $op = $o{opcode} // 2;
    my $fin = exists $o{fin} ? $o{fin} : 1;
    my $rsv = $o{rsv} // 0;
    my $mask = exists $o{mask} ? $o{mask} : 1;
    my $len = length $payload;
    my $b0 = ($fin ? 0x80 : 0) | (($rsv & 7) << 4) | ($op & 0xf);
    my $mbit = $mask ? 0x80 : 0;
    my $form = $o{len} // ($len < 126 ? 7 : $len < 65536 ? 16 : 64);
    my $hdr = chr($b0);
    if ($form == 7) {
        $hdr .= chr($mbit | $len);
    } elsif ($form == 16) {
        $hdr .= chr($mbit | 126) . pack('n', $len);
    } else {
        $hdr .= chr($mbit | 127) . pack('NN', int($len / 4294967296), $len % 4294967296);
    }
    if ($mask) {
        my $key = $o{key} // pack('N', int(rand(4294967296)));
        $hdr .= $key;
        my $k = $key x (int($len / 4) + 1);
        $payload = $payload ^ substr($k, 0, $len);
    }
    return $hdr . $payload;
}

sub ws_close_frame {
    my ($code, $reason, %o) = @_;
    my $p = defined $code ? pack('n', $code) . ($reason // '') : '';
    return ws_frame(opcode => 8, payload => $p, %o);
}

# Removes one complete frame from the front of $$bufref; returns a hash or undef.
sub ws_parse_frame ($) {
    my $bufref = shift;
    my $blen = length $$bufref;
    return undef if $blen < 2;
    my ($b0, $b1) = unpack('CC', $$bufref);
    my $masked = $b1 & 0x80;
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        return undef if $blen < 4;
        $len = unpack('n', substr($$bufref, 2, 2));
        $off = 4;
    } elsif ($len == 127) {
        return undef if $blen < 10;
        my ($hi, $lo) = unpack('NN', substr($$bufref, 2, 8));
        $len = $hi * 4294967296 + $lo;
        $off = 10;
    }
    my $key;
    if ($masked) {
        return undef if $blen < $off + 4;
        $key = substr($$bufref, $off, 4);
        $off += 4;
    }
    return undef if $blen < $off + $len;
    my $payload = substr($$bufref, $off, $len);
    if ($masked) {
        $payload ^= substr($key x (int($len / 4) + 1), 0, $len);
    }
    substr($$bufref, 0, $off + $len) = '';
    my $f = {
        fin => ($b0 >> 7) & 1, rsv => ($b0 >> 4) & 7, opcode => $b0 & 0xf,
        masked => $masked ? 1 : 0, payload => $payload, header_len => $off,
    };
    if ($f->{opcode} == 8 && length($payload) >= 2) {
        $f->{code} = unpack('n', $payload);
        $f->{reason} = substr($payload, 2);
    }
    return $f;
}

sub ws_key () { encode_base64(join('', map { chr(int rand 256) } 1 .. 16), '') }

sub ws_accept ($) { encode_base64(sha1($_[0] . $GUID), '') }

# ws_request(path => '/ws', key => ..., protocol => 'binary', method => 'GET',
#            version => 'HTTP/1.1', headers => { Name => value or undef to omit })
sub ws_request {
    my %o = @_;
    my $path = $o{path} // '/ws';
    my $key = $o{key} // ws_key();
    my @h = (
        [Host => $o{host} // 'localhost'],
        [Upgrade => 'websocket'],
        [Connection => 'Upgrade'],
        ['Sec-WebSocket-Key' => $key],
        ['Sec-WebSocket-Version' => '13'],
    );
    push @h, ['Sec-WebSocket-Protocol' => $o{protocol}] if defined $o{protocol};
    my %over = %{ $o{headers} // {} };
    my @out;
    for my $p (@h) {
        if (exists $over{ $p->[0] }) {
            my $v = delete $over{ $p->[0] };
            push @out, [$p->[0], $v] if defined $v;
        } else {
            push @out, $p;
        }
    }
    push @out, map { [$_, $over{$_}] } grep { defined $over{$_} } sort keys %over;
    my $req = sprintf("%s %s %s\r\n", $o{method} // 'GET', $path, $o{version} // 'HTTP/1.1');
    $req .= "$_->[0]: $_->[1]\r\n" for @out;
    return "$req\r\n";
}

# Reads up to the server's close frame and asserts its status code (undef: a close
# frame without a body), that nginx then closes the connection, and that not one byte
# follows the close frame.  Data frames before it go to {skipped_data}, as in
# read_until_opcode.  Returns the close frame (undef when none came).
sub close_ok {
    my ($c, $code, $what, $timeout) = @_;
    $timeout //= 5;
    my $f = $c->read_until_opcode(8, $timeout);
    if (defined $code) {
        Test::More::is($f && $f->{code}, $code, "$T: $what: close $code");
    } else {
        Test::More::ok($f && $f->{payload} eq '', "$T: $what: close frame without a body");
    }
    Test::More::ok($c->wait_eof($timeout), "$T: $what: connection closed after the close frame");
    my $after = $c->{buf};
    Test::More::is(length $after, 0, "$T: $what: no byte after the close frame")
        or Test::More::diag("after the close frame: " . unpack('H*', substr($after, 0, 32)));
    return $f;
}

# ---------------------------------------------------------------- client

sub _connect_sock {
    my %o = @_;
    my $port = $o{port} // server_port_client();
    my $addr = $o{addr} // '127.0.0.1';
    my $sock;
    if ($addr =~ /:/) {
        require IO::Socket::IP;
        $sock = IO::Socket::IP->new(PeerAddr => $addr, PeerPort => $port,
            Proto => 'tcp', Timeout => 5);
    } else {
        $sock = IO::Socket::INET->new(Proto => 'tcp')
            or die "socket: $!\n";
        # Buffer sizes before connect(): the window scale is fixed by the handshake.
        setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) if $o{rcvbuf};
        setsockopt($sock, SOL_SOCKET, SO_SNDBUF, $o{sndbuf}) if $o{sndbuf};
        $sock->connect(Socket::pack_sockaddr_in($port, Socket::inet_aton($addr)))
            or undef $sock;
    }
    $sock
        or die "cannot connect to nginx on port $port: $!\n";
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    if ($o{tls}) {
        require IO::Socket::SSL;
        IO::Socket::SSL->start_SSL($sock, SSL_verify_mode => 0,
            SSL_hostname => 'localhost', Timeout => 5,
            ($o{alpn} ? (SSL_alpn_protocols => $o{alpn}) : ()))
            or die "TLS handshake failed: $IO::Socket::SSL::SSL_ERROR\n";
    } else {
        $sock->blocking(0);
    }
    return $sock;
}

# Sends a raw HTTP request and reads until the header and the body of a
# non-101 response (Content-Length) is complete, or the connection closes.
# Returns a WsTest::Client with {status, headers, head, body}.
sub http_raw {
    my ($req, %o) = @_;
    my $c = WsTest::Client->new(_connect_sock(%o), $o{tls});
    $c->send($req);
    $c->read_head($o{timeout} // 5);
    if (defined $c->{status} && $c->{status} != 101) {
        my $cl = $c->{headers}{'content-length'};
        if (defined $cl) {
            $c->fill($cl, $o{timeout} // 5);
        }
        $c->{body} = $c->{buf};
    }
    return $c;
}

# ws_connect(%request_opts, extra => bytes sent in the same write as the request,
#            port, tls, timeout).  Returns a WsTest::Client after reading the
#            response head; {status} is the HTTP status (101 on success).
sub ws_connect {
    my %o = @_;
    my $key = $o{key} //= ws_key();
    my $req = ws_request(%o);
    my $c = WsTest::Client->new(_connect_sock(%o), $o{tls});
    $c->{key} = $key;
    $c->send($req . ($o{extra} // ''));
    $c->read_head($o{timeout} // 10);
    return $c;
}

package WsTest::Client;

use strict;
use warnings;
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use Time::HiRes qw(time sleep);

sub new {
    my ($class, $sock, $tls) = @_;
    return bless { sock => $sock, tls => $tls, buf => '', eof => 0, frames => [] }, $class;
}

sub sock { $_[0]{sock} }

# Reads what is available, at most $max bytes (1 MiB), waiting up to $timeout;
# returns bytes read, 0 on EOF, undef on timeout.
sub read_some {
    my ($self, $timeout, $max) = @_;
    return 0 if $self->{eof};
    my $s = $self->{sock};
    my $pending = $self->{tls} && $s->pending;
    if (!$pending) {
        my $sel = IO::Select->new($s);
        return undef if !$sel->can_read($timeout < 0 ? 0 : $timeout);
    }
    my $n = sysread($s, my $data, $max // (1 << 20));
    if (!defined $n) {
        return undef if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        if ($self->{tls} && $IO::Socket::SSL::SSL_ERROR
            && $IO::Socket::SSL::SSL_ERROR == IO::Socket::SSL::SSL_WANT_READ())
        {
            return undef;
        }
        $self->{eof} = 1;
        $self->{error} = "$!";
        return 0;
    }
    if ($n == 0) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{buf} .= $data;
    $self->{bytes_in} += $n;
    return $n;
}

# Writes all of $data (reading into the buffer meanwhile, so that a peer that
# sends while we send cannot deadlock us).  Dies on timeout or error.
sub send {
    my ($self, $data, $timeout) = @_;
    $timeout //= 20;
    my $s = $self->{sock};
    if ($self->{tls}) {
        my $off = 0;
        while ($off < length $data) {
            my $n = syswrite($s, $data, length($data) - $off, $off);
            die "TLS write failed: $!\n" if !defined $n || $n <= 0;
            $off += $n;
        }
        return 1;
    }
    my $deadline = time + $timeout;
    my $off = 0;
    my $len = length $data;
    while ($off < $len) {
        my $n = syswrite($s, $data, $len - $off > 262144 ? 262144 : $len - $off, $off);
        if (defined $n) {
            $off += $n;
            next;
        }
        die "write failed after $off of $len bytes: $!\n"
            if $! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR;
        my $left = $deadline - time;
        die "write timed out after $off of $len bytes\n" if $left <= 0;
        my ($r, $w) = IO::Select->select(IO::Select->new($s), IO::Select->new($s), undef,
            $left > 0.2 ? 0.2 : $left);
        if ($r && @$r) {
            $self->read_some(0);
        }
    }
    return 1;
}

# Sends $data in pieces of the given sizes (cycled), pausing $pause seconds between
# them, so that nginx sees frames split across reads.
sub send_split {
    my ($self, $data, $sizes, $pause) = @_;
    my $i = 0;
    my $off = 0;
    while ($off < length $data) {
        my $sz = $sizes->[ $i++ % @$sizes ];
        $self->send(substr($data, $off, $sz));
        $off += $sz;
        sleep($pause // 0.005);
    }
}

sub read_head {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while ($self->{buf} !~ /\r\n\r\n/) {
        my $r = $self->read_some($deadline - time);
        last if !$r && ($self->{eof} || time >= $deadline);
    }
    if ($self->{buf} =~ s/\A(.*?\r\n)\r\n//s) {
        my $head = $1;
        $self->{head} = $head;
        my @lines = split /\r\n/, $head;
        my $sl = shift @lines;
        ($self->{status}) = $sl =~ m{^HTTP/\d\.\d (\d{3})};
        $self->{status_line} = $sl;
        for (@lines) {
            my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
            my $lk = lc $k;
            $self->{headers}{$lk} = exists $self->{headers}{$lk}
                ? "$self->{headers}{$lk}, $v" : $v;
        }
    }
    return $self->{status};
}

sub fill {
    my ($self, $n, $timeout) = @_;
    my $deadline = time + $timeout;
    while (length($self->{buf}) < $n) {
        my $r = $self->read_some($deadline - time);
        last if !$r && ($self->{eof} || time >= $deadline);
    }
    return length($self->{buf}) >= $n;
}

# Next frame from the server, or undef on timeout/EOF.
sub read_frame {
    my ($self, $timeout) = @_;
    $timeout //= 5;
    my $deadline = time + $timeout;
    while (1) {
        my $f = WsTest::ws_parse_frame(\$self->{buf});
        return $f if $f;
        my $left = $deadline - time;
        return undef if $left <= 0 && !($self->{tls} && $self->{sock}->pending);
        my $r = $self->read_some($left);
        return undef if defined $r && $r == 0;
    }
}

# Reads frames until $len payload bytes of data frames (opcodes 0, 1, 2) were
# collected or $timeout passes.  Control frames are kept in {control}.  In base64
# mode each text frame's payload is decoded.  Returns the data.
sub read_data {
    my ($self, $len, $timeout, %o) = @_;
    my $deadline = time + ($timeout // 5);
    my $data = '';
    $self->{data_opcodes} //= {};
    while (length($data) < $len) {
        my $f = $self->read_frame($deadline - time) or last;
        if ($f->{opcode} >= 8) {
            push @{ $self->{control} }, $f;
            last if $f->{opcode} == 8;
            next;
        }
        $self->{data_opcodes}{ $f->{opcode} }++;
        $self->{data_frames}++;
        $self->{masked_frames}++ if $f->{masked};
        $self->{rsv_frames}++ if $f->{rsv};
        $data .= $o{base64} ? MIME::Base64::decode_base64($f->{payload}) : $f->{payload};
    }
    return $data;
}

# Reads like a client on a slow link: at most $rate bytes a second, in reads of at
# most $chunk bytes (16 KiB), until $len bytes of data frames arrived, the connection
# closed or $timeout passed.  Returns the data; control frames go to {control}.
sub read_paced {
    my ($self, $len, $rate, $timeout, $chunk) = @_;
    my $start = time;
    my $deadline = $start + $timeout;
    my ($wire, $data) = (0, '');
    while (length($data) < $len && time < $deadline) {
        my $ahead = $wire / $rate - (time - $start);
        sleep $ahead if $ahead > 0;
        my $n = $self->read_some(0.2, $chunk // 16384);
        $wire += $n if $n;
        while (my $f = WsTest::ws_parse_frame(\$self->{buf})) {
            if ($f->{opcode} >= 8) {
                push @{ $self->{control} }, $f;
            } else {
                $data .= $f->{payload};
            }
        }
        last if $self->{eof};
    }
    return $data;
}

# Reads frames until one with the given opcode arrives; returns it (undef on
# timeout/EOF).  Data frames seen meanwhile are appended to {skipped_data}.
sub read_until_opcode {
    my ($self, $op, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my $f = $self->read_frame($deadline - time) or return undef;
        return $f if $f->{opcode} == $op;
        $self->{skipped_data} .= $f->{payload} if $f->{opcode} < 8;
        push @{ $self->{control} }, $f if $f->{opcode} >= 8;
    }
}

# Waits until the server closes the TCP connection; returns true if it did within
# $timeout.  Bytes received meanwhile stay in {buf}.
sub wait_eof {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while (!$self->{eof}) {
        my $left = $deadline - time;
        return 0 if $left <= 0;
        $self->read_some($left);
    }
    return 1;
}

sub close {
    my $self = shift;
    close $self->{sock} if $self->{sock};
    delete $self->{sock};
}

sub DESTROY { $_[0]->close }

package WsTest;

# ---------------------------------------------------------------- mock targets

# mock_target(port => N | unix => PATH,
#             banner => bytes sent on accept,
#             echo => 1 (send back what is received),
#             send => [SEED, LEN] (send LEN prng bytes after the banner),
#             send_data => bytes (after the banner),
#             flood => 1 (then send without end, as fast as the peer takes it),
#             close_after_send => 1 (close once everything queued was written),
#             close_after => seconds (close the connection that long after accept),
#             reset_after => seconds (reset it, RST, that long after accept),
#             sndbuf => bytes (SO_SNDBUF of each accepted connection),
#             accept_delay => seconds (sleep before the first accept),
#             read_delay => seconds (do not read for that long after accept),
#             backlog => N, no_accept => 1 (never accept),
#             proxy_protocol => 1 (first read a PROXY protocol v1 or v2 header),
#             tls => {cert, key, ca (then a client certificate is required), version,
#                     ciphers} (then a TLS handshake, after the PROXY header))
# Returns an object: ->connections, ->data(i), ->eof(i), ->wait_data(len, t),
# ->wait_eof(t), ->eof_kind(i), ->wait_connections(n, t), ->sent(i) (bytes the target
# managed to write), ->closed(i), ->wait_closed(t, i) (the target's side ended: it saw EOF,
# a write failed, or it was told to close), ->peer(i) ("addr port" of the client),
# ->proxy(i) (the PROXY header's bytes), ->proxy_parsed(i), ->tls(i) (a hash of the
# handshake: error, version, cipher, sni, reused, client), ->stop.  i counts from 1.
sub mock_target {
    my %o = @_;
    if ($o{tls}) {
        # Made once, before the fork: every connection shares its session ticket keys.
        require IO::Socket::SSL;
        my $t = $o{tls};
        $o{tls_ctx} = IO::Socket::SSL::SSL_Context->new(SSL_server => 1,
            SSL_cert_file => $t->{cert}, SSL_key_file => $t->{key},
            ($t->{ca} ? (SSL_ca_file => $t->{ca}, SSL_verify_mode => 0x03) : (SSL_verify_mode => 0)),
            ($t->{version} ? (SSL_version => $t->{version}) : ()),
            ($t->{ciphers} ? (SSL_cipher_list => $t->{ciphers}) : ()))
            or die "mock target: TLS context: $IO::Socket::SSL::SSL_ERROR\n";
    }
    my $dir = File::Temp::tempdir('target-XXXXXX', DIR => $TMP, CLEANUP => 1);
    my $listen;
    if ($o{unix}) {
        unlink $o{unix};
        $listen = IO::Socket::UNIX->new(Local => $o{unix}, Listen => $o{backlog} // 64,
            Type => Socket::SOCK_STREAM())
            or die "mock target: cannot listen on $o{unix}: $!\n";
    } else {
        $listen = IO::Socket::INET->new(LocalAddr => $o{addr} // '127.0.0.1',
            LocalPort => $o{port}, Listen => $o{backlog} // 64, ReuseAddr => 1, Proto => 'tcp')
            or die "mock target: cannot listen on port $o{port}: $!\n";
    }
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        my $ok = eval { _target_main($listen, $dir, \%o); 1 };
        POSIX::_exit($ok ? 0 : 1);
    }
    my $t = bless { pid => $pid, dir => $dir, opts => \%o, listen => $listen }, 'WsTest::Target';
    push @TARGETS, $t;
    return $t;
}

# Runs a real server (a VNC server, say) in its own process group until the block ends:
# spawn_server(name => 'Xvnc', cmd => [...], port => P) waits until P accepts (socket =>
# PATH: until that Unix socket exists), or dies after 20 s with the server's output.
# Stopped with the mock targets.
sub spawn_server {
    my %o = @_;
    my $dir = File::Temp::tempdir("$o{name}-XXXXXX", DIR => $TMP, CLEANUP => 1);
    # A socket left by a server that was killed would look like this one listening.
    unlink $o{socket} if $o{socket} && -S $o{socket} && !_unix_connects($o{socket});
    my $pid = fork();
    die "fork: $!" if !defined $pid;
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        open STDOUT, '>', "$dir/out.log";
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec @{ $o{cmd} } or POSIX::_exit(127);
    }
    # Stopped with TERM first: X servers then remove their sockets and lock files.
    my $t = bless { pid => $pid, dir => $dir, opts => { term => 1 } }, 'WsTest::Target';
    push @TARGETS, $t;
    my $up = wait_until(sub {
        return _unix_connects($o{socket}) if $o{socket};
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port}, Proto => 'tcp')
    }, 20);
    my $where = $o{socket} // $o{port};
    die "$o{name} did not listen on $where: " . (slurp("$dir/out.log") // '') . "\n" if !$up;
    return $t;
}

sub _unix_connects {
    my ($path) = @_;
    return IO::Socket::UNIX->new(Peer => $path, Type => Socket::SOCK_STREAM());
}

sub stop_all_targets {
    while (my $t = shift @TARGETS) { $t->stop }
}

sub _target_main {
    my ($listen, $dir, $o) = @_;
    POSIX::setpgid(0, 0);
    $SIG{PIPE} = 'IGNORE';
    $SIG{ALRM} = 'DEFAULT';
    alarm 0;
    $SIG{CHLD} = 'IGNORE';
    if ($o->{no_accept}) {
        sleep 1000 while 1;
    }
    sleep $o->{accept_delay} if $o->{accept_delay};
    my $n = 0;
    while (1) {
        my $c = $listen->accept or next;
        $n++;
        my $pid = fork();
        if (!defined $pid) { next }
        if ($pid == 0) {
            close $listen;
            _target_conn($c, "$dir/conn.$n", $o);
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub _target_conn {
    my ($c, $base, $o) = @_;
    open my $mark, '>', $base; close $mark;
    _write_file("$base.peer", $c->peerhost . ' ' . $c->peerport) if $c->can('peerport');
    open my $rec, '>>:raw', "$base.data" or die;
    $rec->autoflush(1);
    $c->blocking(1);
    return if $o->{proxy_protocol} && !_read_proxy_header($c, $base);
    if ($o->{tls_ctx}) {
        my $ok = IO::Socket::SSL->start_SSL($c, SSL_server => 1, SSL_reuse_ctx => $o->{tls_ctx},
            Timeout => 5);
        if (!$ok) {
            _write_file("$base.tls", "error $IO::Socket::SSL::SSL_ERROR\n");
            return;
        }
        my $client = $c->peer_certificate('subject') // '';
        _write_file("$base.tls", join '', map { "$_->[0] $_->[1]\n" }
            [version => $c->get_sslversion], [cipher => $c->get_cipher],
            [sni => $c->get_servername // ''], [reused => $c->get_session_reused ? 1 : 0],
            [client => $client]);
    }
    return if $o->{rfb} && !_rfb_server($c, $base, $o->{rfb});
    $c->blocking(0);
    setsockopt($c, SOL_SOCKET, SO_SNDBUF, $o->{sndbuf}) if $o->{sndbuf};
    my $sent = 0;
    my $out = ($o->{banner} // '') . ($o->{send_data} // '');
    $out .= prng_bytes($o->{send}[0], $o->{send}[1]) if $o->{send};
    my $start = time;
    my $peer_eof = 0;
    my $sel = IO::Select->new($c);
    my $flood = $o->{flood} ? prng_bytes('flood', 65536) : undef;
    my $tls = $o->{tls_ctx};
    while (1) {
        $out .= $flood if defined $flood && length $out < 65536;
        if ($o->{close_after} && time - $start >= $o->{close_after}) { last }
        if ($o->{reset_after} && time - $start >= $o->{reset_after}) {
            setsockopt($c, SOL_SOCKET, Socket::SO_LINGER(), pack('ii', 1, 0));
            last;
        }
        if ($o->{close_after_send} && $out eq '') { last }
        if ($peer_eof && $out eq '') { last }
        my $reading = !$peer_eof && !($o->{read_delay} && time - $start < $o->{read_delay});
        # Bytes already decrypted inside the TLS layer never show in select().
        my $pending = $reading && $tls && $c->pending;
        my ($r, $w) = IO::Select->select($reading ? $sel : undef, $out ne '' ? $sel : undef,
            undef, $pending ? 0 : 0.05);
        if (($r && @$r) || $pending) {
            my $n = sysread($c, my $buf, 262144);
            if (defined $n && $n > 0) {
                print $rec $buf;
                $out .= $buf if $o->{echo};
            } elsif (defined $n || ($! != EAGAIN && $! != EINTR)) {
                $peer_eof = 1;
                # over TLS, a clean end is the peer's close_notify alert
                # (SSL_RECEIVED_SHUTDOWN); the end of the TCP stream alone is just 'eof'
                my $notify = $tls && Net::SSLeay::get_shutdown($c->_get_ssl_object) & 2;
                _write_file("$base.eof", !defined $n ? "error: $!"
                    : $notify ? 'close_notify' : 'eof');
                last if !$o->{echo};
            }
        }
        if ($w && @$w && $out ne '') {
            my $n = syswrite($c, $out, length($out) > 262144 ? 262144 : length $out);
            if (defined $n) {
                substr($out, 0, $n) = '';
                $sent += $n;
                _write_file("$base.sent", $sent);
            } elsif ($! != EAGAIN && $! != EINTR) {
                last;
            }
        }
    }
    close $c;
    open my $d, '>', "$base.closed"; close $d;
}

# A scripted VNC server's handshake (RFC 6143), before the byte loop: ProtocolVersion
# (version => '003.008'), the security types offered (types => [...]; 3.3 decides
# types->[0]), VncAuth checked against password (DES through openssl), SecurityResult
# (fail => reason), then ClientInit and ServerInit (desktop => name). It writes what it
# saw to BASE.rfb: "version ...", "chose N", "auth ok|bad", "shared N".
sub _rfb_server {
    my ($c, $base, $r) = @_;
    my $log = '';
    my $note = sub { $log .= "$_[0]\n"; _write_file("$base.rfb", $log) };
    my $read = sub {
        my $n = shift;
        my $buf = '';
        while (length $buf < $n) {
            my $got = sysread($c, $buf, $n - length $buf, length $buf);
            return undef if !$got;
        }
        return $buf;
    };
    my $v = $r->{version} // '003.008';
    syswrite($c, $r->{banner} // "RFB $v\n");
    sleep 30 if $r->{stall};
    return 0 if $r->{banner} || $r->{stall};
    my $cv = $read->(12) // return 0;
    chomp(my $shown = $cv);
    $note->("version $shown");
    my $types = $r->{types} // [1];
    my $type;
    if ($v eq '003.003') {
        $type = $types->[0];
        syswrite($c, pack('N', $type));
    } else {
        syswrite($c, pack('C C*', scalar @$types, @$types));
        $type = unpack('C', $read->(1) // return 0);
    }
    $note->("chose $type");
    if ($type == 2) {
        my $challenge = join '', map { chr(($_ * 37 + 11) & 255) } 1 .. 16;
        syswrite($c, $challenge);
        my $resp = $read->(16) // return 0;
        my $ok = $resp eq _vnc_des($r->{password} // '', $challenge);
        $note->('auth ' . ($ok ? 'ok' : 'bad'));
        $r = { %$r, fail => 'Authentication failed' } if !$ok;
    }
    if ($type == 2 || $v eq '003.008') {
        if (defined $r->{fail}) {
            syswrite($c, pack('N', 1) . ($v eq '003.008' ? pack('N/a*', $r->{fail}) : ''));
            return 0;
        }
        syswrite($c, pack('N', 0));
    }
    my $shared = $read->(1) // return 0;
    $note->('shared ' . unpack('C', $shared));
    my $name = $r->{desktop} // 'scripted';
    syswrite($c, pack('n n', 800, 600) . ("\0" x 16) . pack('N/a*', $name));
    return 1;
}

# VncAuth's response: DES-ECB of the challenge, keyed by the password's first 8 bytes
# (zero-padded) with each byte's bits reversed.
sub _vnc_des {
    my ($password, $challenge) = @_;
    my $key = join '', map { sprintf '%02x', unpack('C', pack('b8', unpack('B8', $_))) }
        split //, substr($password . ("\0" x 8), 0, 8);
    my $in = File::Temp->new(DIR => $TMP);
    binmode $in;
    print $in $challenge;
    close $in;
    my $out = `openssl enc -des-ecb -nopad -K $key -provider legacy -provider default -in $in 2>/dev/null`;
    return $out;
}

sub _write_file {
    my ($path, $data) = @_;
    open my $f, '>:raw', "$path.tmp" or die "$path: $!";
    print $f $data;
    close $f;
    rename "$path.tmp", $path;
}

# Reads a PROXY protocol header (v1 text or v2 binary) and nothing after it; keeps its
# bytes in BASE.proxy and what it says in BASE.proxy.parsed (or why it is invalid).
sub _read_proxy_header {
    my ($c, $base) = @_;
    my $sig = "\r\n\r\n\0\r\nQUIT\n";
    my $read = sub {
        my $n = shift;
        my $buf = '';
        while (length $buf < $n) {
            my $got = sysread($c, $buf, $n - length $buf, length $buf);
            return undef if !$got;
        }
        return $buf;
    };
    my $head = $read->(1) // return;
    my ($raw, $parsed);
    if ($head eq 'P') {
        $raw = $head;
        while ($raw !~ /\r\n\z/ && length $raw < 107) {
            $raw .= $read->(1) // last;
        }
        $parsed = $raw =~ /\APROXY (TCP4|TCP6) (\S+) (\S+) (\d+) (\d+)\r\n\z/
            ? "v1 $1 $2 $3 $4 $5" : $raw eq "PROXY UNKNOWN\r\n" ? 'v1 UNKNOWN' : 'invalid';
    } else {
        $raw = $head . ($read->(15) // '');
        my $len = length $raw == 16 ? unpack('n', substr($raw, 14, 2)) : 0;
        $raw .= $read->($len) // '' if $len;
        $parsed = 'invalid';
        if (length $raw == 16 + $len && substr($raw, 0, 12) eq $sig) {
            my ($vc, $fam) = unpack('C C', substr($raw, 12, 2));
            my $body = substr($raw, 16);
            if ($vc == 0x21 && $fam == 0x11 && $len == 12) {
                my @a = unpack('a4 a4 n n', $body);
                $parsed = join ' ', 'v2 TCP4', Socket::inet_ntop(Socket::AF_INET(), $a[0]),
                    Socket::inet_ntop(Socket::AF_INET(), $a[1]), $a[2], $a[3];
            } elsif ($vc == 0x21 && $fam == 0x21 && $len == 36) {
                my @a = unpack('a16 a16 n n', $body);
                $parsed = join ' ', 'v2 TCP6', Socket::inet_ntop(Socket::AF_INET6(), $a[0]),
                    Socket::inet_ntop(Socket::AF_INET6(), $a[1]), $a[2], $a[3];
            } elsif ($vc == 0x21 && $fam == 0x00) {
                $parsed = 'v2 UNSPEC';
            }
        }
    }
    # The parse first: tests wait for the raw header, then read both.
    _write_file("$base.proxy.parsed", $parsed);
    _write_file("$base.proxy", $raw);
    return $parsed ne 'invalid';
}

package WsTest::Target;

use Time::HiRes qw(time sleep);

sub connections {
    my $self = shift;
    my @c = grep { /\/conn\.\d+$/ } glob("$self->{dir}/conn.*");
    return scalar @c;
}

sub wait_connections {
    my ($self, $n, $timeout) = @_;
    return WsTest::wait_until(sub { $self->connections >= $n }, $timeout);
}

sub data { my ($self, $i) = @_; WsTest::slurp("$self->{dir}/conn." . ($i // 1) . ".data") // '' }

sub data_len { my ($self, $i) = @_; -s "$self->{dir}/conn." . ($i // 1) . ".data" || 0 }

sub eof { my ($self, $i) = @_; -e "$self->{dir}/conn." . ($i // 1) . ".eof" ? 1 : 0 }

sub sent { my ($self, $i) = @_; WsTest::slurp("$self->{dir}/conn." . ($i // 1) . ".sent") || 0 }

sub closed { my ($self, $i) = @_; -e "$self->{dir}/conn." . ($i // 1) . ".closed" ? 1 : 0 }

sub wait_closed {
    my ($self, $timeout, $i) = @_;
    return WsTest::wait_until(sub { $self->closed($i) }, $timeout) ? 1 : 0;
}

# How the client's side ended: 'close_notify' (TLS), 'eof' or 'error: ...'.
sub eof_kind { $_[0]->_conn_file($_[1], 'eof') }

sub _conn_file { my ($self, $i, $what) = @_; WsTest::slurp("$self->{dir}/conn." . ($i // 1) . ".$what") }

sub peer { $_[0]->_conn_file($_[1], 'peer') }
sub rfb { $_[0]->_conn_file($_[1], 'rfb') // '' }

sub proxy { $_[0]->_conn_file($_[1], 'proxy') }

sub proxy_parsed { $_[0]->_conn_file($_[1], 'proxy.parsed') }

# The TLS handshake of connection i, once it ended: {error} or {version, cipher, sni,
# reused, client}; undef before.
sub tls {
    my ($self, $i) = @_;
    my $t = WsTest::wait_until(sub { $self->_conn_file($i, 'tls') }, 5) // return undef;
    return { map { /^(\w+) ?(.*)$/ } split /\n/, $t };
}

sub wait_data {
    my ($self, $len, $timeout, $i) = @_;
    WsTest::wait_until(sub { $self->data_len($i) >= $len }, $timeout);
    return $self->data($i);
}

sub wait_eof {
    my ($self, $timeout, $i) = @_;
    return WsTest::wait_until(sub { $self->eof($i) }, $timeout) ? 1 : 0;
}

sub stop {
    my $self = shift;
    return if !$self->{pid};
    if ($self->{opts}{term}) {
        kill 'TERM', -$self->{pid};
        my $deadline = Time::HiRes::time() + 2;
        Time::HiRes::sleep(0.02) while waitpid($self->{pid}, POSIX::WNOHANG()) == 0
            && Time::HiRes::time() < $deadline;
    }
    kill 'KILL', -$self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
    close $self->{listen} if $self->{listen};
    delete $self->{listen};
    unlink $self->{opts}{unix} if $self->{opts}{unix};
}

sub DESTROY { $_[0]->stop }

1;
