//! `deploy/kubernetes/probe/`: the /probe replicas as a StatefulSet behind
//! a headless Service, and the scrape jobs that shard discovered Ingresses
//! and Services over them. Cross-checked like the other manifests, and the
//! jobs' relabelling run by the real Prometheus: Debian's build has no
//! Kubernetes discovery, so the test hands the same `__meta_kubernetes_*`
//! labels to `file_sd_configs` in its place and changes nothing else but
//! the replicas' addresses.

use std::time::Duration;

use serde_norway::Value;

use super::kubernetes::{
    check_certinel_container, manifests, named, only, opt, pod_of, seq, str_at, string_map,
};
use super::*;

/// The scrape jobs of `prometheus-scrape.yaml`, as text and parsed.
fn scrape_jobs() -> (String, Value) {
    let docs = manifests("probe");
    let cm = named(&docs, "ConfigMap", "certinel-probe-scrape");
    let text = str_at(&cm.value, &["data", "certinel-probe.yml"]).to_owned();
    let parsed = serde_norway::from_str(&text).unwrap();
    (text, parsed)
}

/// The relabelling from the hashmod rule on, the part that shards.
fn sharding(job: &Value) -> Vec<Value> {
    let rules = seq(job, &["relabel_configs"]);
    let from = rules
        .iter()
        .position(|r| r.get("action").and_then(Value::as_str) == Some("hashmod"))
        .expect("a hashmod rule");
    rules[from..].to_vec()
}

/// The embedded certinel config, allowed to reach loopback and `localhost`
/// only, its cluster CA file at `ca`.
fn loopback_config(ca: &std::path::Path) -> String {
    let docs = manifests("probe");
    let text = str_at(
        &named(&docs, "ConfigMap", "certinel-probe").value,
        &["data", "config.yaml"],
    )
    .to_owned();
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    config["probe"]["allow"]["hosts"] = serde_norway::from_str("[localhost]").unwrap();
    config["probe"]["allow"]["networks"] =
        serde_norway::from_str("[127.0.0.1/32, \"::1/128\"]").unwrap();
    config["modules"]["cluster-ca"]["ca_file"] = Value::String(ca.display().to_string());
    serde_norway::to_string(&config).unwrap()
}

#[test]
fn probe_manifests_reference_each_other() {
    let docs = manifests("probe");
    let sts = only(&docs, "StatefulSet");
    let pod = pod_of(sts);
    let config = check_certinel_container(&docs, &pod);
    let (name, replicas) = (sts.name(), sts.value["spec"]["replicas"].as_u64().unwrap());

    // The headless Service the replicas' names hang off.
    let service = only(&docs, "Service");
    assert_eq!(str_at(&sts.value, &["spec", "serviceName"]), service.name());
    assert_eq!(str_at(&service.value, &["spec", "clusterIP"]), "None");
    let selector = string_map(opt(&service.value, &["spec", "selector"]));
    assert!(selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)));
    let port = seq(&service.value, &["spec", "ports"])[0]["port"]
        .as_u64()
        .unwrap();
    assert_eq!(port, u64::from(certinel::cli::DEFAULT_PORT));

    // The cluster CA comes from Kubernetes' own ConfigMap, where the
    // module reads it.
    let ca = config["modules"]["cluster-ca"]["ca_file"].as_str().unwrap();
    let volume = seq(pod.spec, &["volumes"])
        .iter()
        .find(|v| {
            opt(v, &["configMap", "name"]).and_then(Value::as_str) == Some("kube-root-ca.crt")
        })
        .expect("kube-root-ca.crt mounted");
    let mount = seq(&seq(pod.spec, &["containers"])[0], &["volumeMounts"])
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap();
    assert_eq!(format!("{}/ca.crt", str_at(mount, &["mountPath"])), ca);

    // Each job sends shard i to replica i, by its stable name, and shards
    // exactly as deploy/scale-out/prometheus.yml does (which
    // tests/probe/scaleout.rs runs with real Prometheus).
    let (_, jobs) = scrape_jobs();
    let plain: Value = serde_norway::from_str(&read("deploy/scale-out/prometheus.yml")).unwrap();
    let proven = sharding(
        seq(&plain, &["scrape_configs"])
            .iter()
            .find(|j| j["job_name"] == "certinel-probe")
            .unwrap(),
    );
    let jobs = seq(&jobs, &["scrape_configs"]);
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        assert_eq!(str_at(job, &["metrics_path"]), "/probe");
        let mut rules = sharding(job);
        assert_eq!(rules[0]["modulus"].as_u64(), Some(replicas));
        let rewrites: Vec<&mut Value> = rules
            .iter_mut()
            .filter(|r| r.get("target_label").and_then(Value::as_str) == Some("__address__"))
            .collect();
        assert_eq!(rewrites.len() as u64, replicas);
        for (i, rule) in rewrites.into_iter().enumerate() {
            assert_eq!(rule["regex"].as_str(), Some(i.to_string().as_str()));
            assert_eq!(
                rule["replacement"].as_str().unwrap(),
                format!("{name}-{i}.{}.monitoring.svc:{port}", service.name())
            );
            rule["replacement"] = Value::String(format!("certinel-{i}.example.internal:{port}"));
        }
        assert_eq!(rules, proven, "{:?}", job["job_name"]);
    }

    // The embedded config loads, with a CA where the mount puts one.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.crt", Ca::new("cluster").cert.cert_pem);
    let path = write(dir.path(), "config.yaml", loopback_config(&ca_file));
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
}

#[test]
fn kubernetes_relabelling_shards_what_discovery_finds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let ca_file = write(dir.path(), "ca.crt", &ca.cert.cert_pem);
    let https = tls_server(
        &ca.issue(&Leaf::server("web-https", 60)),
        &ServerOptions::default(),
    );
    let grpc = tls_server(
        &ca.issue(&Leaf::server("grpc", 60)),
        &ServerOptions::default(),
    );
    let config = loopback_config(&ca_file);
    let replicas: Vec<Daemon> = (0..2)
        .map(|i| Daemon::start(&dir.path().join(format!("r{i}")), &config))
        .collect();

    // What discovery would find: Ingress hosts (one served with TLS, one
    // plain, one wildcard) and Service ports (https, metrics, and a grpc
    // port opted in by annotation with the cluster-ca module).
    let meta = "__meta_kubernetes";
    let ingresses = write(
        dir.path(),
        "ingresses.yml",
        format!(
            "- targets: [localhost]\n  labels: {{{meta}_ingress_scheme: https, {meta}_namespace: shop, {meta}_ingress_name: web}}\n\
             - targets: [plain.invalid]\n  labels: {{{meta}_ingress_scheme: http, {meta}_namespace: shop, {meta}_ingress_name: plain}}\n\
             - targets: [\"*.example.com\"]\n  labels: {{{meta}_ingress_scheme: https, {meta}_namespace: shop, {meta}_ingress_name: wild}}\n"
        ),
    );
    let services = write(
        dir.path(),
        "services.yml",
        format!(
            "- targets: [\"localhost:{}\"]\n  labels: {{{meta}_service_port_name: https, {meta}_namespace: shop, {meta}_service_name: web}}\n\
             - targets: [\"localhost:1\"]\n  labels: {{{meta}_service_port_name: metrics, {meta}_namespace: shop, {meta}_service_name: web}}\n\
             - targets: [\"localhost:{}\"]\n  labels: {{{meta}_service_port_name: grpc, {meta}_namespace: shop, {meta}_service_name: api, \
             {meta}_service_annotation_certinel_io_probe: \"true\", {meta}_service_annotation_certinel_io_module: cluster-ca}}\n",
            https.addr.port(),
            grpc.addr.port()
        ),
    );
    let (mut jobs, _) = scrape_jobs();
    for (role, file) in [("ingress", &ingresses), ("service", &services)] {
        let from = format!("kubernetes_sd_configs:\n      - role: {role}\n");
        assert!(jobs.contains(&from), "{from}");
        jobs = jobs.replace(
            &from,
            &format!("file_sd_configs:\n      - files: [{}]\n", yaml_str(file)),
        );
    }
    for (i, d) in replicas.iter().enumerate() {
        let from = format!("certinel-probe-{i}.certinel-probe.monitoring.svc:10044");
        assert!(jobs.contains(&from));
        jobs = jobs.replace(&from, &d.addr.to_string());
    }
    let prom = Prometheus::start_with_config(
        &dir.path().join("prometheus"),
        &format!("global:\n  scrape_interval: {TICK}\n  scrape_timeout: {TICK}\n{jobs}"),
    );
    let up = |job: &str| {
        prom.wait_query(
            &format!("up{{job=\"{job}\"}} == 1"),
            Duration::from_secs(30),
            |r| !r.is_empty(),
        );
        prom.query(&format!("up{{job=\"{job}\"}}")).unwrap()
    };
    let addrs: Vec<String> = replicas.iter().map(|d| d.addr.to_string()).collect();
    let ingress = up("certinel-probe-ingresses");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let m = &ingress[0]["metric"];
    assert_eq!(
        (m["instance"].as_str(), m["namespace"].as_str()),
        (Some("localhost:443"), Some("shop"))
    );
    assert_eq!(m["ingress"], "web");
    assert!(addrs.iter().any(|a| m["replica"] == a.as_str()), "{m}");

    let https_t = format!("localhost:{}", https.addr.port());
    let grpc_t = format!("localhost:{}", grpc.addr.port());
    let found = prom.wait_query(
        "count(up{job=\"certinel-probe-services\"} == 1) == 2",
        Duration::from_secs(30),
        |r| !r.is_empty(),
    );
    assert!(!found.is_empty());
    // The https port with the default module (system roots: this CA is
    // not among them), the annotated port with the cluster CA's module.
    for (instance, module, success) in [(&https_t, "default", 0.0), (&grpc_t, "cluster-ca", 1.0)] {
        let r = prom
            .query(&format!(
                "x509_cert_not_after{{job=\"certinel-probe-services\",instance=\"{instance}\",source_name=\"{module}\",chain_index=\"0\"}}"
            ))
            .unwrap();
        assert_eq!(r.len(), 1, "{instance}: {r:?}");
        let p = prom
            .query(&format!("probe_success{{instance=\"{instance}\"}}"))
            .unwrap();
        assert_eq!(sample_value(&p[0]), success, "{instance}");
        assert!(addrs
            .iter()
            .any(|a| p[0]["metric"]["replica"] == a.as_str()));
    }
    let all = prom
        .query("count(up{job=\"certinel-probe-services\"})")
        .unwrap();
    assert_eq!(sample_value(&all[0]), 2.0, "the metrics port is not probed");
}
