//! Every Kubernetes manifest parsed and its references followed (mounts,
//! ports, probes, selectors, secrets), and the embedded configs run for
//! real: against a TLS server serving what cert-manager would issue, and
//! over a node's certificate tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_norway::Value;

use certinel::cli::DEFAULT_PORT;
use certinel::config::Config;

use super::*;

/// One parsed manifest document.
#[derive(Debug, Clone)]
pub(super) struct Doc {
    pub(super) file: String,
    pub(super) value: Value,
}

impl Doc {
    pub(super) fn kind(&self) -> &str {
        str_at(&self.value, &["kind"])
    }
    pub(super) fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"])
    }
}

pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("missing {} in {}", path.join("."), show(v)));
    }
    cur
}

pub(super) fn opt<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string in {}", path.join("."), show(v)))
}

pub(super) fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    match opt(v, path) {
        None => &[],
        Some(s) => s
            .as_sequence()
            .unwrap_or_else(|| panic!("{} is not a list", path.join(".")))
            .as_slice(),
    }
}

fn show(v: &Value) -> String {
    let text = serde_norway::to_string(v).unwrap_or_default();
    text.chars().take(600).collect()
}

pub(super) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let Some(v) = v else {
        return BTreeMap::new();
    };
    v.as_mapping()
        .unwrap_or_else(|| panic!("not a map: {}", show(v)))
        .iter()
        .map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{k}: quote it, Kubernetes wants a string"));
            (k, v.to_owned())
        })
        .collect()
}

/// Every document of every `*.yaml` under `deploy/kubernetes/<sub>`.
pub(super) fn manifests(sub: &str) -> Vec<Doc> {
    let base = repo().join("deploy/kubernetes").join(sub);
    let mut docs = Vec::new();
    for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
        let path = entry.unwrap().into_path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (n, de) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value =
                Value::deserialize(de).unwrap_or_else(|e| panic!("{file} document {n}: {e}"));
            assert!(!value.is_null(), "{file}: empty document {n}");
            docs.push(Doc {
                file: file.clone(),
                value,
            });
        }
    }
    docs
}

pub(super) fn only<'a>(docs: &'a [Doc], kind: &str) -> &'a Doc {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

pub(super) fn named<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn every_manifest_parses_with_a_known_api_version_and_kind() {
    let known: BTreeMap<&str, &str> = [
        ("ConfigMap", "v1"),
        ("Service", "v1"),
        ("ServiceAccount", "v1"),
        ("Deployment", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("Certificate", "cert-manager.io/v1"),
        ("ClusterIssuer", "cert-manager.io/v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
    ]
    .into();
    let docs = manifests("");
    assert!(docs.len() >= 12, "only {} documents", docs.len());
    let mut seen = BTreeSet::new();
    for d in &docs {
        let kind = d.kind();
        let want = known
            .get(kind)
            .unwrap_or_else(|| panic!("{}: unexpected kind {kind}", d.file));
        assert_eq!(
            str_at(&d.value, &["apiVersion"]),
            *want,
            "{}: {kind}",
            d.file
        );
        assert!(is_dns_label(d.name()), "{}: name {:?}", d.file, d.name());
        // The examples are namespace-less (kubectl apply -n ...), except the
        // optional CA bootstrap, which must live with cert-manager.
        let ns = opt(&d.value, &["metadata", "namespace"]).and_then(Value::as_str);
        match ns {
            None => {}
            Some("cert-manager") if d.file.contains("/cert-manager/") => {}
            Some(ns) => panic!("{}: {kind}/{} pinned to namespace {ns}", d.file, d.name()),
        }
        let dir = Path::new(&d.file).parent().unwrap().to_owned();
        assert!(
            seen.insert((dir, kind.to_owned(), d.name().to_owned())),
            "{}: duplicate {kind}/{}",
            d.file,
            d.name()
        );
        for v in [&["metadata", "labels"][..], &["metadata", "annotations"]] {
            string_map(opt(&d.value, v));
        }
    }
}

/// The pod a workload runs, with what the checks need.
pub(super) struct Pod<'a> {
    pub(super) labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    pub(super) spec: &'a Value,
}

pub(super) fn pod_of(workload: &Doc) -> Pod<'_> {
    let template = at(&workload.value, &["spec", "template"]);
    let labels = string_map(opt(template, &["metadata", "labels"]));
    let selector = string_map(opt(&workload.value, &["spec", "selector", "matchLabels"]));
    assert!(!selector.is_empty(), "{}: empty selector", workload.name());
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{}: selector {selector:?} does not match the template labels {labels:?}",
        workload.name()
    );
    Pod {
        labels,
        annotations: string_map(opt(template, &["metadata", "annotations"])),
        spec: at(template, &["spec"]),
    }
}

pub(super) fn container<'a>(pod: &Pod<'a>, name: &str) -> &'a Value {
    seq(pod.spec, &["containers"])
        .iter()
        .find(|c| str_at(c, &["name"]) == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

pub(super) fn args(container: &Value) -> Vec<String> {
    seq(container, &["args"])
        .iter()
        .map(|a| a.as_str().expect("args are strings").to_owned())
        .collect()
}

/// Resolves a probe or PodMonitor port (name or number) on a container.
pub(super) fn port_number(container: &Value, port: &Value) -> u16 {
    let ports = seq(container, &["ports"]);
    let found = ports.iter().find(|p| match port {
        Value::String(name) => p.get("name").and_then(Value::as_str) == Some(name),
        Value::Number(n) => p.get("containerPort").and_then(Value::as_u64) == n.as_u64(),
        _ => false,
    });
    let found = found.unwrap_or_else(|| panic!("port {port:?} is not declared by the container"));
    at(found, &["containerPort"]).as_u64().unwrap() as u16
}

/// A volume mount with the volume it mounts.
struct Mount<'a> {
    path: String,
    read_only: bool,
    volume: &'a Value,
}

fn mounts<'a>(pod: &Pod<'a>, container: &'a Value) -> Vec<Mount<'a>> {
    seq(container, &["volumeMounts"])
        .iter()
        .map(|m| {
            let name = str_at(m, &["name"]);
            let volume = seq(pod.spec, &["volumes"])
                .iter()
                .find(|v| str_at(v, &["name"]) == name)
                .unwrap_or_else(|| panic!("volumeMount {name}: no such volume"));
            assert!(
                m.get("subPath").is_none(),
                "{name}: subPath mounts never see Secret/ConfigMap updates"
            );
            Mount {
                path: str_at(m, &["mountPath"]).to_owned(),
                read_only: m.get("readOnly").and_then(Value::as_bool) == Some(true),
                volume,
            }
        })
        .collect()
}

/// The part of a configured path before its first glob component.
fn static_prefix(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .take_while(|c| {
            !c.as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '[', '{'])
        })
        .collect()
}

fn under(path: &Path, dir: &str) -> bool {
    path.starts_with(dir) && path.components().all(|c| c != Component::ParentDir)
}

/// Every path the config reads: file source paths and the TLS files of
/// endpoints and modules.
fn config_paths(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in seq(config, &["files"]) {
        for p in seq(f, &["paths"]) {
            out.push(p.as_str().unwrap().to_owned());
        }
    }
    let modules = opt(config, &["modules"]).and_then(Value::as_mapping);
    let entries = seq(config, &["endpoints"])
        .iter()
        .chain(modules.into_iter().flat_map(|m| m.values()));
    for e in entries {
        for key in ["ca_file", "client_cert", "client_key"] {
            if let Some(p) = e.get(key).and_then(Value::as_str) {
                out.push(p.to_owned());
            }
        }
    }
    out
}

/// The directory of `--config.file`, where its ConfigMap is mounted, and
/// the file name, the ConfigMap's key.
fn config_dir_and_key(cli: &Cli) -> (String, String) {
    let name = |p: Option<&std::ffi::OsStr>| p.unwrap().to_string_lossy().into_owned();
    (
        name(cli.config_file.parent().map(Path::as_os_str)),
        name(cli.config_file.file_name()),
    )
}

/// What every certinel container must satisfy, whatever pod it is in.
/// Returns the embedded config.
pub(super) fn check_certinel_container(docs: &[Doc], pod: &Pod<'_>) -> Value {
    let c = container(pod, "certinel");
    let cli = cli(&args(c));
    let port = listen_port(&cli);
    assert_eq!(port, DEFAULT_PORT);

    // The named port, probes, scrape annotations and PodMonitor agree.
    let metrics = Value::String("metrics".to_owned());
    assert_eq!(
        port_number(c, &metrics),
        port,
        "port `metrics` vs listen address"
    );
    for (probe, path) in [
        ("livenessProbe", "/-/healthy"),
        ("readinessProbe", "/-/ready"),
    ] {
        let get = at(c, &[probe, "httpGet"]);
        assert_eq!(str_at(get, &["path"]), path, "{probe}");
        assert_eq!(port_number(c, at(get, &["port"])), port, "{probe} port");
    }
    assert_eq!(
        pod.annotations
            .get("prometheus.io/scrape")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        pod.annotations.get("prometheus.io/port"),
        Some(&port.to_string())
    );
    assert_eq!(
        pod.annotations
            .get("prometheus.io/path")
            .map(String::as_str),
        Some("/metrics")
    );
    let monitor = only(docs, "PodMonitor");
    let selector = string_map(opt(&monitor.value, &["spec", "selector", "matchLabels"]));
    assert!(!selector.is_empty());
    assert!(
        selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)),
        "PodMonitor selector {selector:?} vs pod labels {:?}",
        pod.labels
    );
    let endpoints = seq(&monitor.value, &["spec", "podMetricsEndpoints"]);
    assert!(!endpoints.is_empty());
    for e in endpoints {
        assert_eq!(port_number(c, at(e, &["port"])), port, "PodMonitor port");
        assert_eq!(str_at(e, &["path"]), "/metrics");
    }

    // Hardening.
    let sc = at(c, &["securityContext"]);
    assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(
        at(sc, &["runAsUser"]).as_u64(),
        Some(65532),
        "the Dockerfile's USER"
    );
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
    assert!(seq(sc, &["capabilities", "drop"])
        .iter()
        .any(|d| d.as_str() == Some("ALL")));
    assert_eq!(str_at(sc, &["seccompProfile", "type"]), "RuntimeDefault");

    // Requests sized, memory bounded.
    let mib = |q: &str| -> u64 {
        q.strip_suffix("Mi")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("memory {q}: write it in Mi"))
    };
    let req = mib(str_at(c, &["resources", "requests", "memory"]));
    let lim = mib(str_at(c, &["resources", "limits", "memory"]));
    assert!(str_at(c, &["resources", "requests", "cpu"]).ends_with('m'));
    assert!(
        (8..=lim).contains(&req),
        "memory request {req}Mi, limit {lim}Mi"
    );

    // Every mount read-only; the config file comes from a ConfigMap key.
    let mounts = mounts(pod, c);
    assert!(
        mounts.iter().all(|m| m.read_only),
        "certinel mounts must be read-only"
    );
    let (config_dir, key) = config_dir_and_key(&cli);
    let mount = mounts
        .iter()
        .find(|m| m.path == config_dir)
        .unwrap_or_else(|| panic!("nothing mounted at {config_dir}"));
    let cm_name = str_at(mount.volume, &["configMap", "name"]);
    let cm = named(docs, "ConfigMap", cm_name);
    let text = str_at(&cm.value, &["data", &key]);
    let config: Value = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{cm_name}: {e}"));

    // Every configured path lies in a read-only mount (not the config's own).
    for p in config_paths(&config) {
        let prefix = static_prefix(&p);
        assert!(
            mounts
                .iter()
                .any(|m| m.path != config_dir && under(&prefix, &m.path)),
            "{p} is in no volume mounted into the certinel container"
        );
    }
    config
}

#[test]
fn sidecar_manifests_reference_each_other() {
    let docs = manifests("sidecar");
    let pod = pod_of(only(&docs, "Deployment"));
    let config = check_certinel_container(&docs, &pod);
    let certinel = container(&pod, "certinel");
    let app = container(&pod, "varpulis");

    // The Certificate: ECDSA P-256, 30 days, renewed at 15, from a
    // ClusterIssuer the bootstrap defines.
    let cert = only(&docs, "Certificate");
    let spec = at(&cert.value, &["spec"]);
    assert_eq!(str_at(spec, &["privateKey", "algorithm"]), "ECDSA");
    assert_eq!(at(spec, &["privateKey", "size"]).as_u64(), Some(256));
    let hours = |k: &str| humantime::parse_duration(str_at(spec, &[k])).unwrap();
    assert_eq!(hours("duration"), Duration::from_secs(720 * 3600));
    assert_eq!(hours("renewBefore"), Duration::from_secs(360 * 3600));
    assert_eq!(str_at(spec, &["issuerRef", "kind"]), "ClusterIssuer");
    let issuers = manifests("cert-manager");
    named(
        &issuers,
        "ClusterIssuer",
        str_at(spec, &["issuerRef", "name"]),
    );
    let secret = str_at(spec, &["secretName"]);
    let dns_names: Vec<&str> = seq(spec, &["dnsNames"])
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();

    // certinel sees the Certificate's Secret, certificates only, at the
    // directory of every file it is configured to read.
    let cert_mounts: Vec<Mount<'_>> = mounts(&pod, certinel)
        .into_iter()
        .filter(|m| m.volume.get("secret").is_some())
        .collect();
    assert_eq!(cert_mounts.len(), 1, "one Secret mounted into certinel");
    let tls = &cert_mounts[0];
    assert_eq!(str_at(tls.volume, &["secret", "secretName"]), secret);
    let paths = config_paths(&config);
    assert!(paths.len() >= 3, "{paths:?}");
    for p in &paths {
        assert_eq!(Path::new(p).parent().unwrap(), Path::new(&tls.path), "{p}");
    }
    let items: Vec<&str> = seq(tls.volume, &["secret", "items"])
        .iter()
        .map(|i| str_at(i, &["path"]))
        .collect();
    if !items.is_empty() {
        assert!(!items.contains(&"tls.key"), "certinel needs no private key");
        for p in &paths {
            let name = Path::new(p).file_name().unwrap().to_str().unwrap();
            assert!(items.contains(&name), "{p} is not projected: {items:?}");
        }
    }

    // Varpulis serves that Secret: its --tls-cert is a file certinel watches.
    let app_args = args(app);
    let flag = |name: &str| -> String {
        let eq = format!("{name}=");
        app_args
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                a.strip_prefix(&eq)
                    .map(str::to_owned)
                    .or_else(|| (a == name).then(|| app_args[i + 1].clone()))
            })
            .unwrap_or_else(|| panic!("varpulis has no {name}: {app_args:?}"))
    };
    let app_mount = mounts(&pod, app)
        .into_iter()
        .find(|m| opt(m.volume, &["secret", "secretName"]).and_then(Value::as_str) == Some(secret))
        .expect("varpulis mounts the Certificate's Secret");
    assert!(app_mount.read_only);
    assert!(
        opt(app_mount.volume, &["secret", "items"]).is_none(),
        "varpulis needs the key"
    );
    for f in ["--tls-cert", "--tls-key"] {
        assert_eq!(
            Path::new(&flag(f)).parent().unwrap(),
            Path::new(&app_mount.path),
            "{f}"
        );
    }
    let served = flag("--tls-cert");
    let watched = Path::new(&served).strip_prefix(&app_mount.path).unwrap();
    assert!(
        paths
            .iter()
            .any(|p| Path::new(p).strip_prefix(&tls.path).ok() == Some(watched)),
        "certinel does not watch {served}"
    );

    // The endpoint probe targets the app in the same pod, by a name on the
    // certificate.
    let endpoints = seq(&config, &["endpoints"]);
    assert_eq!(endpoints.len(), 1);
    let server_name = str_at(&endpoints[0], &["server_name"]);
    assert!(
        dns_names.contains(&server_name),
        "{server_name} not in {dns_names:?}"
    );
    for t in seq(&endpoints[0], &["targets"]) {
        let (host, port) = t.as_str().unwrap().rsplit_once(':').unwrap();
        assert!(
            ["localhost", "127.0.0.1", "[::1]"].contains(&host),
            "{host}: not this pod"
        );
        let port = Value::Number(port.parse::<u16>().unwrap().into());
        port_number(app, &port);
    }

    // The Service fronts the same pods on the app's port.
    let service = only(&docs, "Service");
    let selector = string_map(opt(&service.value, &["spec", "selector"]));
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)));
    for p in seq(&service.value, &["spec", "ports"]) {
        port_number(app, at(p, &["targetPort"]));
    }
}

#[test]
fn daemonset_manifests_reference_each_other() {
    let docs = manifests("daemonset");
    let pod = pod_of(only(&docs, "DaemonSet"));
    let config = check_certinel_container(&docs, &pod);
    let c = container(&pod, "certinel");

    let account = str_at(pod.spec, &["serviceAccountName"]);
    let sa = named(&docs, "ServiceAccount", account);
    assert_eq!(
        at(&sa.value, &["automountServiceAccountToken"]).as_bool(),
        Some(false)
    );
    assert_eq!(
        at(pod.spec, &["automountServiceAccountToken"]).as_bool(),
        Some(false)
    );

    let tolerated: Vec<&str> = seq(pod.spec, &["tolerations"])
        .iter()
        .map(|t| str_at(t, &["key"]))
        .collect();
    assert!(tolerated.contains(&"node-role.kubernetes.io/control-plane"));

    // Node files are mounted read-only at their own path, so `filepath`
    // labels name the file on the node; every configured path is in one.
    let host_mounts: Vec<Mount<'_>> = mounts(&pod, c)
        .into_iter()
        .filter(|m| m.volume.get("hostPath").is_some())
        .collect();
    assert!(!host_mounts.is_empty());
    for m in &host_mounts {
        assert_eq!(str_at(m.volume, &["hostPath", "path"]), m.path);
    }
    for p in config_paths(&config) {
        let prefix = static_prefix(&p);
        assert!(
            host_mounts.iter().any(|m| under(&prefix, &m.path)),
            "{p}: no hostPath"
        );
    }
}

/// The embedded config text of the certinel container in `sub`.
fn embedded_config(sub: &str, kind: &str) -> String {
    let docs = manifests(sub);
    let pod = pod_of(only(&docs, kind));
    let (dir, key) = config_dir_and_key(&cli(&args(container(&pod, "certinel"))));
    let c = container(&pod, "certinel");
    let mount = mounts(&pod, c).into_iter().find(|m| m.path == dir).unwrap();
    let cm = named(
        &docs,
        "ConfigMap",
        str_at(mount.volume, &["configMap", "name"]),
    );
    str_at(&cm.value, &["data", &key]).to_owned()
}

/// Rewrites every string in `v` starting with `from` to start with `to`.
fn rebase(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.starts_with(from) => *s = format!("{to}{}", &s[from.len()..]),
        Value::Sequence(items) => items.iter_mut().for_each(|i| rebase(i, from, to)),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, i)| rebase(i, from, to)),
        _ => {}
    }
}

#[test]
fn sidecar_config_watches_and_probes_a_cert_manager_secret() {
    let text = embedded_config("sidecar", "Deployment");
    let docs = manifests("sidecar");
    let spec = at(&only(&docs, "Certificate").value, &["spec"]);
    let dns_names: Vec<&str> = seq(spec, &["dnsNames"])
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let pod = pod_of(only(&docs, "Deployment"));
    let secret_dir = mounts(&pod, container(&pod, "certinel"))
        .into_iter()
        .find(|m| m.volume.get("secret").is_some())
        .unwrap()
        .path;

    // What cert-manager would issue: a CA and an ECDSA P-256 leaf for the
    // Certificate's names, laid out as the mounted Secret.
    let ca = Ca::new("Varpulis Internal CA");
    let leaf = ca.issue(&Leaf {
        cn: "varpulis",
        sans: &dns_names,
        not_before: now() - DAY,
        not_after: now() + 30 * DAY,
        client_auth_only: false,
    });
    let tmp = tempfile::tempdir().unwrap();
    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    secret_volume(
        &tls_dir,
        "..2026_01_01_00_00_00.000000001",
        &[("tls.crt", &leaf.cert_pem), ("ca.crt", &ca.cert.cert_pem)],
    );
    let server = tls_server(
        &leaf,
        &ServerOptions {
            chain: vec![ca.cert.cert_pem.clone()],
            ..Default::default()
        },
    );

    // The ConfigMap's config, only moved: paths into the temp dir, the
    // app's port to the test server.
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    rebase(
        &mut config,
        &format!("{secret_dir}/"),
        &format!("{}/", tls_dir.display()),
    );
    let targets = config["endpoints"][0]["targets"].as_sequence_mut().unwrap();
    let target = format!("localhost:{}", server.addr.port());
    for t in targets.iter_mut() {
        assert!(t.as_str().unwrap().starts_with("localhost:"));
        *t = Value::String(target.clone());
    }
    let yaml = serde_norway::to_string(&config).unwrap();
    Config::from_yaml(&yaml, tmp.path()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));

    let d = Daemon::start(tmp.path(), &yaml);
    let address = server.addr.to_string();
    let m = d.wait_for(Duration::from_secs(20), |m| {
        m.find("certinel_tls_handshake_error", &[("address", &address)])
            .first()
            .is_some_and(|s| s.value == 0.0)
            && m.find("x509_source_up", &[]).len() == 2
    });
    for s in m.find("x509_source_up", &[]) {
        assert_eq!(s.value, 1.0, "{s:?}");
    }
    // Both files seen through the symlinks, under the configured paths.
    let crt = tls_dir.join("tls.crt").display().to_string();
    let file = m.one("x509_cert_not_after", &[("filepath", crt.as_str())]);
    assert_eq!(file.value, leaf.not_after as f64);
    let ca_path = tls_dir.join("ca.crt").display().to_string();
    assert!(m.has("x509_cert_not_after", &[("filepath", ca_path.as_str())]));
    // The endpoint serves the same certificate the Secret holds.
    let served = m.one(
        "x509_cert_not_after",
        &[
            ("target", target.as_str()),
            ("address", &address),
            ("chain_index", "0"),
        ],
    );
    assert_eq!(served.labels["serial_number"], file.labels["serial_number"]);
    assert_eq!(
        served.labels["server_name"],
        str_at(&config["endpoints"][0], &["server_name"])
    );
    d.wait_ready(Duration::from_secs(5));
}

#[test]
fn daemonset_config_reads_node_certificates_but_not_keys() {
    let text = embedded_config("daemonset", "DaemonSet");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("node");
    let ca = Ca::new("kubernetes");
    let leaf = ca.issue(&Leaf::server("kube-apiserver", 300));
    let files = [
        ("etc/kubernetes/pki/ca.crt", &ca.cert.cert_pem),
        ("etc/kubernetes/pki/ca.key", &ca.cert.key_pem),
        ("etc/kubernetes/pki/apiserver.crt", &leaf.cert_pem),
        ("etc/kubernetes/pki/etcd/ca.crt", &ca.cert.cert_pem),
        ("var/lib/kubelet/pki/kubelet.crt", &leaf.cert_pem),
        ("var/lib/kubelet/pki/kubelet.key", &leaf.key_pem),
    ];
    for (rel, content) in files {
        write(&root, rel, content);
    }
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    rebase(&mut config, "/", &format!("{}/", root.display()));
    let yaml = serde_norway::to_string(&config).unwrap();
    let d = Daemon::start(tmp.path(), &yaml);
    d.wait_ready(Duration::from_secs(20));
    let m = d.metrics();
    let mut seen: Vec<String> = m
        .find("x509_cert_not_after", &[("source_kind", "file")])
        .iter()
        .map(|s| {
            s.labels["filepath"]
                .strip_prefix(&root.display().to_string())
                .unwrap()
                .to_owned()
        })
        .collect();
    seen.sort();
    let mut want: Vec<String> = files
        .iter()
        .filter(|(rel, _)| rel.ends_with(".crt"))
        .map(|(rel, _)| format!("/{rel}"))
        .collect();
    want.sort();
    assert_eq!(seen, want);
    assert!(!m.has("certinel_file_error_info", &[]), "{}", m.text);
}
