//! Passes what nginx-sys detected about the nginx build (features, OS) to the compiler as
//! `ngx_feature = "..."` and `ngx_os = "..."` cfgs, the way ngx-rust's example build.rs does.
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
}
