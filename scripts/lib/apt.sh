# shellcheck shell=bash
# Sourced by scripts that fetch from the Debian archive. The archive's address always comes
# from the machine's own apt configuration (one-line `deb` lists and deb822 `.sources`
# alike, read by apt itself); other suites (sid, trixie) are reached through a temporary
# sources list and never by touching the system's.

DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The Debian archive the machine installs its own release from (prints the URI).
debian_archive() {
  local codename lists uri
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  # apt prints what `update` would fetch from its configured sources; an empty lists
  # directory makes it print every source and needs no lock.
  uri=$(apt-get -o Dir::State::Lists="$lists" -o Debug::NoLocking=1 --print-uris update 2>/dev/null \
        | sed -n "s|^'\(.*\)/dists/$codename/\(In\)\{0,1\}Release'.*|\1|p" | head -n1)
  rm -rf "$lists"
  if [ -z "$uri" ]; then
    echo "no Debian archive for '${codename:-?}' in the apt configuration" \
         "(/etc/apt/sources.list, /etc/apt/sources.list.d/*.list or *.sources);" \
         "add the mirror this machine installs from and retry" >&2
    return 1
  fi
  echo "$uri"
}

# apt_suite_opts DIR SUITE: sets the array apt_opts to apt options that use only SUITE of
# the Debian archive, with lists and cache in DIR (created; the caller removes it).
apt_suite_opts() {
  local dir=$1 suite=$2 uri
  uri=$(debian_archive) || return 1
  [ -f "$DEBIAN_KEYRING" ] || { echo "$DEBIAN_KEYRING is missing (apt-get install debian-archive-keyring)" >&2; return 1; }
  mkdir -p "$dir/lists/partial" "$dir/archives/partial"
  echo "deb [signed-by=$DEBIAN_KEYRING] $uri $suite main" >"$dir/sources.list"
  apt_opts=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$dir/lists" -o Dir::Cache::Archives="$dir/archives"
            -o Dir::State::Status=/dev/null -o APT::Sandbox::User=root -o Debug::NoLocking=1)
}

# apt_download SUITE DESTDIR PACKAGE...: downloads the packages' .deb files (no
# dependencies) from SUITE of the Debian archive into DESTDIR.
apt_download() {
  local suite=$1 dest=$2 tmp rc=0; shift 2
  tmp=$(mktemp -d)
  if apt_suite_opts "$tmp" "$suite"; then
    timeout 300 apt-get "${apt_opts[@]}" update -qq \
      && (cd "$dest" && timeout 300 apt-get "${apt_opts[@]}" download "$@" >/dev/null) || rc=1
  else
    rc=1
  fi
  rm -rf "$tmp"
  return $rc
}
