//! A real browser: Debian's headless `chromium`, driven over WebDriver
//! (W3C, plain HTTP and JSON on loopback) through `chromedriver`. The
//! session and the driver end when the [`Browser`] drops.
//!
//! `$CHROMIUM` and `$CHROMEDRIVER` override the programs looked up in
//! `PATH` (Debian: `apt-get install chromium chromium-driver`;
//! `scripts/test` installs them). Without them the tests fail, never skip.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::http::try_exchange_body;
use crate::common::prometheus::{find_program, start_server, Proc};
use crate::common::wait::eventually;

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take (a first start of chromium on
/// a loaded machine takes seconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The window, and so the size of every screenshot.
pub const WINDOW: (u32, u32) = (1280, 1000);

/// A chromium session, ended on drop.
pub struct Browser {
    driver: Proc,
    addr: SocketAddr,
    session: String,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver and a headless chromium with a fresh profile in
    /// `dir`, which resolves no name but `localhost` and calls no one.
    pub fn start(dir: &Path) -> Browser {
        let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
        let chromium = find_program("CHROMIUM", &["chromium", "chromium-browser"]);
        let (driver, addr) = start_server(
            "chromedriver",
            &dir.join("chromedriver"),
            "/status",
            |addr| {
                let mut cmd = Command::new(&chromedriver);
                cmd.arg(format!("--port={}", addr.port()))
                    .arg("--allowed-ips=127.0.0.1");
                cmd
            },
        );
        let profile = dir.join("chromium-profile");
        let args = [
            "--headless=new".to_owned(),
            // Root in a container has no user namespaces for the sandbox.
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            // Loopback only: any other name or address fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
                .to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args },
            }}
        });
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        let created = browser.command("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; panics with the driver's error and log.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let reply = try_exchange_body(
            self.addr,
            method,
            path,
            headers,
            body.as_bytes(),
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}\n{}", self.driver.log_tail()));
        let value: Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {}", reply.body));
        if reply.status != 200 {
            panic!(
                "WebDriver {method} {path} answered {}: {}\n{}",
                reply.status,
                value["value"],
                self.driver.log_tail()
            );
        }
        value["value"].clone()
    }

    fn session_command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_command("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_command("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the current URL satisfies `pred` (a click's navigation
    /// may still be under way when the click returns).
    pub fn wait_for_url(&self, pred: impl Fn(&str) -> bool) -> String {
        eventually(
            Duration::from_secs(10),
            || Some(self.url()).filter(|u| pred(u) && self.loaded()),
            || format!("the browser stayed at {}", self.url()),
        )
    }

    fn loaded(&self) -> bool {
        self.script("return document.readyState") == "complete"
    }

    /// Runs `body` (a function body: `return …`) in the page.
    pub fn script(&self, body: &str) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": body, "args": [] })),
        )
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Element<'_> {
        let found = self.session_command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": selector })),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_owned();
        Element { browser: self, id }
    }

    /// A PNG of the window, as the user sees it.
    pub fn screenshot(&self) -> Vec<u8> {
        let data = self.session_command("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("screenshot is base64")
    }
}

impl Element<'_> {
    fn command(&self, action: &str, body: Value) -> Value {
        let path = format!("/element/{}/{action}", self.id);
        self.browser.session_command("POST", &path, Some(body))
    }

    /// Clicks it, as a user would.
    pub fn click(&self) {
        self.command("click", json!({}));
    }

    /// Empties a text field.
    pub fn clear(&self) {
        self.command("clear", json!({}));
    }

    /// Types `text` into it.
    pub fn type_text(&self, text: &str) {
        self.command("value", json!({ "text": text }));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium quits with its session; the driver is killed after.
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = try_exchange_body(self.addr, "DELETE", &path, &[], b"", COMMAND_TIMEOUT);
        }
    }
}

/// The width and height a PNG's header declares.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.get(12..16) == Some(b"IHDR"),
        "not a PNG ({} bytes)",
        png.len()
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}
