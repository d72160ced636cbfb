//! Passes what nginx-sys detected about the nginx build (features, OS) to the compiler as
//! `ngx_feature = "..."` and `ngx_os = "..."` cfgs, the way ngx-rust's example build.rs does,
//! and refuses to build when the Rust bindings disagree with the C compiler about the
//! layout of a struct the module reads or writes (see `layout` below).
//! The `DEP_NGINX_*` variables exist only because nginx-sys is a direct dependency.
use std::env;

fn main() {
    for (cfg, list, check) in [
        (
            "ngx_feature",
            "DEP_NGINX_FEATURES",
            "DEP_NGINX_FEATURES_CHECK",
        ),
        ("ngx_os", "DEP_NGINX_OS", "DEP_NGINX_OS_CHECK"),
    ] {
        println!("cargo::rerun-if-env-changed={list}");
        println!("cargo::rerun-if-env-changed={check}");
        let values = env::var(check).ok().filter(|v| !v.trim().is_empty());
        let values = values.as_deref().unwrap_or("any()");
        println!("cargo::rustc-check-cfg=cfg({cfg}, values({values}))");
        for value in env::var(list).ok().iter().flat_map(|v| v.split(',')) {
            let value = value.trim();
            if !value.is_empty() {
                println!("cargo::rustc-cfg={cfg}=\"{value}\"");
            }
        }
    }
    // Version-dependent APIs, from DEP_NGINX_VERSION_NUMBER (e.g. 1022001). ngx_ssl_cache:
    // nginx 1.27.4 gave ngx_ssl_connection_certificate() a certificate cache argument.
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version: u64 = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    println!("cargo::rustc-check-cfg=cfg(ngx_ssl_cache)");
    if version >= 1_027_004 {
        println!("cargo::rustc-cfg=ngx_ssl_cache");
    }
    layout::check();
}

/// The layout check: a wrong struct layout must stop the build, not corrupt a session.
///
/// bindgen has placed bit-fields wrongly before (0.72 on `ngx_http_request_t` since nginx
/// 1.29.3), and nothing at run time notices: a write to `r->keepalive` lands on a
/// neighbour. So every build compiles two small probes for the nginx it builds against
/// and compares what they print, field by field:
/// - a C probe, compiled with the C compiler and nginx's include paths, that prints each
///   field's byte offset and size (plain fields) or bit offset and width (bit-fields, found
///   by setting the field to all ones in a zeroed struct and looking at which bits moved);
/// - a Rust probe, compiled by the same rustc from nginx-sys's generated bindings, that
///   does the same through `offset_of!` and bindgen's bit-field setters.
///
/// Every field of every struct in `STRUCTS` is compared (the fields are read from the
/// bindings), which covers each field the glue touches. A mismatch is a `cargo::error`
/// naming the struct, the field and both positions.
mod layout {
    use std::collections::BTreeMap;
    use std::env;
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The nginx structs whose fields the module reads or writes through raw FFI (its own
    /// code and the `ngx` crate's inline helpers it calls).
    const STRUCTS: &[&str] = &[
        "ngx_http_request_t",
        "ngx_connection_t",
        "ngx_event_t",
        "ngx_peer_connection_t",
        "ngx_buf_t",
        "ngx_chain_t",
        "ngx_pool_t",
        "ngx_log_t",
        "ngx_cycle_t",
        "ngx_conf_t",
        "ngx_command_t",
        "ngx_module_t",
        "ngx_url_t",
        "ngx_addr_t",
        "ngx_list_t",
        "ngx_list_part_t",
        "ngx_table_elt_t",
        "ngx_queue_t",
        "ngx_shm_zone_t",
        "ngx_shm_t",
        "ngx_slab_pool_t",
        "ngx_resolver_ctx_t",
        "ngx_resolver_addr_t",
        "ngx_ssl_t",
        "ngx_ssl_connection_t",
        "ngx_http_headers_in_t",
        "ngx_http_headers_out_t",
        "ngx_http_cleanup_t",
        "ngx_http_variable_t",
        "ngx_http_variable_value_t",
        "ngx_http_complex_value_t",
        "ngx_http_compile_complex_value_t",
        "ngx_http_conf_ctx_t",
        "ngx_http_module_t",
        "ngx_http_core_main_conf_t",
        "ngx_http_core_srv_conf_t",
        "ngx_http_core_loc_conf_t",
        "ngx_http_location_queue_t",
        "ngx_http_upstream_t",
        "ngx_http_upstream_conf_t",
        "ngx_http_upstream_state_t",
        "ngx_http_upstream_resolved_t",
        "ngx_http_upstream_srv_conf_t",
        "ngx_http_upstream_main_conf_t",
        "ngx_http_upstream_server_t",
        "ngx_http_upstream_local_t",
        "ngx_http_upstream_peer_t",
    ];

    /// Rust keywords that bindgen escapes with a trailing `_` in field names.
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
        "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop",
        "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
        "static", "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized",
        "use", "virtual", "where", "while", "yield",
    ];

    enum Field {
        /// A named field: its Rust name.
        Plain(String),
        /// A bit-field: its C name and the setter's argument type.
        Bits(String, String),
    }

    struct Layout {
        c_name: &'static str,
        fields: Vec<Field>,
    }

    pub fn check() {
        println!("cargo::rerun-if-env-changed=DEP_NGINX_BINDINGS");
        println!("cargo::rerun-if-env-changed=DEP_NGINX_INCLUDE");
        println!("cargo::rerun-if-env-changed=DEP_NGINX_CFLAGS");
        let Ok(bindings) = env::var("DEP_NGINX_BINDINGS") else {
            println!(
                "cargo::error=nginx-sys does not say where its bindings are \
                 (DEP_NGINX_BINDINGS): build with the patched nginx-sys in vendor/"
            );
            return;
        };
        if env::var("HOST").ok() != env::var("TARGET").ok() {
            println!("cargo::warning=cross build: the struct layout check is skipped");
            return;
        }
        let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default());
        match run(Path::new(&bindings), &out) {
            Ok(mismatches) if mismatches.is_empty() => {}
            Ok(mismatches) => {
                println!(
                    "cargo::error=the Rust bindings of {} disagree with the C compiler \
                     about struct layout ({} fields); the module would corrupt requests:",
                    env::var("DEP_NGINX_VERSION").unwrap_or_default(),
                    mismatches.len()
                );
                for m in mismatches {
                    println!("cargo::error={m}");
                }
            }
            Err(e) => println!("cargo::error=struct layout check: {e}"),
        }
    }

    fn run(bindings: &Path, out: &Path) -> Result<Vec<String>, String> {
        let text =
            fs::read_to_string(bindings).map_err(|e| format!("{}: {e}", bindings.display()))?;
        let layouts = parse(&text)?;
        let c = probe_c(&layouts, out)?;
        let rust = probe_rust(&layouts, bindings, out)?;
        let mut mismatches = Vec::new();
        for (key, c_pos) in &c {
            match rust.get(key) {
                Some(r_pos) if r_pos == c_pos => {}
                Some(r_pos) => mismatches.push(format!("{key}: C {c_pos}, Rust {r_pos}")),
                None => mismatches.push(format!("{key}: C {c_pos}, missing in Rust")),
            }
        }
        Ok(mismatches)
    }

    /// Finds each struct's fields in bindgen's output: `pub name: type,` lines in the struct
    /// and `set_name(&mut self, val: T)` bit-field setters in its `impl`. Fields bindgen made
    /// up (`_bitfield_N`, `__bindgen_anon_N`, padding) start with `_` and are skipped.
    fn parse(text: &str) -> Result<Vec<Layout>, String> {
        let (mut layouts, mut missing) = (Vec::new(), Vec::new());
        for &c_name in STRUCTS {
            let tag = struct_tag(text, c_name);
            let mut fields = Vec::new();
            if let Some(body) = block(text, &format!("pub struct {tag} {{")) {
                for line in body.lines() {
                    let Some((name, _)) = line
                        .trim()
                        .strip_prefix("pub ")
                        .and_then(|l| l.split_once(':'))
                    else {
                        continue;
                    };
                    if !name.starts_with('_') {
                        fields.push(Field::Plain(name.to_string()));
                    }
                }
            } else {
                // Only the TLS structs may be missing: nginx built without SSL.
                if !c_name.starts_with("ngx_ssl_") {
                    missing.push(c_name);
                }
                continue;
            }
            if let Some(body) = block(text, &format!("impl {tag} {{")) {
                for line in body.lines() {
                    let Some(rest) = line.trim().strip_prefix("pub fn set_") else {
                        continue;
                    };
                    let Some((name, rest)) = rest.split_once("(&mut self, val: ") else {
                        continue;
                    };
                    let ty = rest.split(')').next().unwrap_or_default();
                    fields.push(Field::Bits(name.to_string(), ty.to_string()));
                }
            }
            layouts.push(Layout { c_name, fields });
        }
        match missing.is_empty() {
            true => Ok(layouts),
            false => Err(format!("not in the bindings: {}", missing.join(", "))),
        }
    }

    /// The Rust struct behind a C type name: `typedef struct {...} T` is `struct T` in the
    /// bindings, `typedef struct T_s T` an alias `type T = T_s` (possibly of an alias).
    fn struct_tag<'a>(text: &'a str, name: &'a str) -> &'a str {
        let mut tag = name;
        for _ in 0..4 {
            let alias = format!("\npub type {tag} = ");
            let Some(at) = text.find(&alias) else { break };
            let rest = &text[at + alias.len()..];
            match rest.split_once(";\n") {
                Some((target, _))
                    if target
                        .bytes()
                        .all(|b| b == b'_' || b.is_ascii_alphanumeric()) =>
                {
                    tag = target
                }
                _ => break,
            }
        }
        tag
    }

    /// The text between `head` (at the start of a line) and the next line that is `}`.
    fn block<'a>(text: &'a str, head: &str) -> Option<&'a str> {
        let start = text.find(&format!("\n{head}\n"))? + head.len() + 2;
        let len = text[start..].find("\n}\n")?;
        Some(&text[start..start + len])
    }

    fn c_field(rust_name: &str) -> &str {
        match rust_name.strip_suffix('_') {
            Some(stem) if KEYWORDS.contains(&stem) => stem,
            _ => rust_name,
        }
    }

    /// `struct.field` → "byte B size S" or "bit B width W"; `struct` → "size S".
    type Positions = BTreeMap<String, String>;

    fn probe_c(layouts: &[Layout], out: &Path) -> Result<Positions, String> {
        let mut src = String::from(
            "#include <ngx_config.h>\n#include <ngx_core.h>\n#include <ngx_http.h>\n\
             #include <stdio.h>\n#include <string.h>\n#include <stddef.h>\n\n\
             static void bits(const char *name, const unsigned char *p, size_t n) {\n\
             \x20   size_t i, first = 0, width = 0;\n\
             \x20   for (i = 0; i < n * 8; i++) {\n\
             \x20       if (p[i / 8] >> (i % 8) & 1) { if (!width) first = i; width++; }\n\
             \x20   }\n\
             \x20   printf(\"%s bit %zu width %zu\\n\", name, first, width);\n}\n\n\
             int main(void) {\n",
        );
        for l in layouts {
            let t = l.c_name;
            let _ = writeln!(src, "  {{ static {t} s;");
            let _ = writeln!(src, "    printf(\"{t} size %zu\\n\", sizeof({t}));");
            for f in &l.fields {
                match f {
                    Field::Plain(name) => {
                        let c = c_field(name);
                        let _ = writeln!(
                            src,
                            "    printf(\"{t}.{c} byte %zu size %zu\\n\", offsetof({t}, {c}), sizeof(s.{c}));"
                        );
                    }
                    Field::Bits(name, _) => {
                        let _ = writeln!(
                            src,
                            "    memset(&s, 0, sizeof(s)); s.{name} = 0; s.{name}--;\n    \
                             bits(\"{t}.{name}\", (const unsigned char *) &s, sizeof(s));"
                        );
                    }
                }
            }
            src.push_str("  }\n");
        }
        src.push_str("  return 0;\n}\n");
        let file = out.join("layout_probe.c");
        let exe = out.join("layout_probe_c");
        fs::write(&file, src).map_err(|e| format!("{}: {e}", file.display()))?;

        let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
        let mut cmd = compiler.to_command();
        for dir in env::split_paths(&env::var_os("DEP_NGINX_INCLUDE").unwrap_or_default()) {
            cmd.arg("-I").arg(dir);
        }
        if let Ok(flags) = env::var("DEP_NGINX_CFLAGS") {
            cmd.args(flags.split_whitespace());
        }
        cmd.arg("-w").arg("-o").arg(&exe).arg(&file);
        execute(cmd, "C probe")?;
        Ok(positions(&execute(Command::new(&exe), "C probe run")?))
    }

    fn probe_rust(layouts: &[Layout], bindings: &Path, out: &Path) -> Result<Positions, String> {
        let mut src = format!(
            "#![allow(warnings)]\nmod b {{ include!({:?}); }}\nuse b::*;\n\n\
             fn bits<T>(name: &str, s: &T) {{\n\
             \x20   let p = unsafe {{ core::slice::from_raw_parts(s as *const T as *const u8, core::mem::size_of::<T>()) }};\n\
             \x20   let (mut first, mut width) = (0, 0);\n\
             \x20   for i in 0..p.len() * 8 {{\n\
             \x20       if p[i / 8] >> (i % 8) & 1 == 1 {{ if width == 0 {{ first = i; }} width += 1; }}\n\
             \x20   }}\n\
             \x20   println!(\"{{name}} bit {{first}} width {{width}}\");\n}}\n\n\
             fn main() {{ unsafe {{\n",
            bindings.display().to_string()
        );
        for l in layouts {
            let t = l.c_name;
            let _ = writeln!(src, "  let mut s: {t} = core::mem::zeroed();");
            let _ = writeln!(
                src,
                "  println!(\"{t} size {{}}\", core::mem::size_of::<{t}>());"
            );
            for f in &l.fields {
                match f {
                    Field::Plain(name) => {
                        let c = c_field(name);
                        let _ = writeln!(
                            src,
                            "  println!(\"{t}.{c} byte {{}} size {{}}\", core::mem::offset_of!({t}, {name}), core::mem::size_of_val(&s.{name}));"
                        );
                    }
                    Field::Bits(name, ty) => {
                        let ones = if ty == "bool" { "true" } else { "!0" };
                        let _ = writeln!(
                            src,
                            "  s = core::mem::zeroed(); s.set_{name}({ones}); bits(\"{t}.{name}\", &s);"
                        );
                    }
                }
            }
        }
        src.push_str("} }\n");
        let file = out.join("layout_probe.rs");
        let exe = out.join("layout_probe_rs");
        fs::write(&file, src).map_err(|e| format!("{}: {e}", file.display()))?;
        let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let mut cmd = Command::new(rustc);
        cmd.args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "-C",
            "opt-level=0",
        ])
        .args(["-C", "debuginfo=0", "--cap-lints", "allow", "-o"])
        .arg(&exe)
        .arg(&file);
        execute(cmd, "Rust probe")?;
        Ok(positions(&execute(Command::new(&exe), "Rust probe run")?))
    }

    fn execute(mut cmd: Command, what: &str) -> Result<String, String> {
        let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first: Vec<&str> = err.lines().take(20).collect();
            return Err(format!(
                "{what} failed ({}): {}",
                out.status,
                first.join(" | ")
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn positions(output: &str) -> Positions {
        output
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
