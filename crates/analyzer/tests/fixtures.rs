//! The analyzer's fixture suite: small sessions, each with its findings asserted exactly as
//! (code, cell index, line of the finding). Every rule has positive and negative cases; flows cross
//! cells, go through functions, containers, f-strings, unpacking and comprehensions; redefinition kills
//! taint; a cell with a syntax error does not stop the others.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

use nbtrail_analyzer::{Analysis, Cell, Rules, analyze};

fn run(cells: &[&str]) -> Analysis {
    let cells: Vec<Cell> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| Cell::new(i.to_string(), *c, Some("python")))
        .collect();
    analyze(&cells, &Rules::default_rules())
}

fn found(cells: &[&str]) -> Vec<(String, u32, u32)> {
    let mut v: Vec<(String, u32, u32)> = run(cells)
        .findings
        .iter()
        .map(|f| (f.code.clone(), f.location.cell, f.location.line))
        .collect();
    v.sort();
    v
}

fn expect(cells: &[&str], want: &[(&str, u32, u32)]) {
    let mut want: Vec<(String, u32, u32)> = want
        .iter()
        .map(|(c, i, l)| (c.to_string(), *i, *l))
        .collect();
    want.sort();
    assert_eq!(found(cells), want, "cells: {cells:#?}");
}

const SECRET: &str = r#"tok = dbutils.secrets.get(scope="prod", key="api")"#;

// ---------------------------------------------------------------- NBT001 secret-leak

#[test]
fn secret_printed_in_a_later_cell() {
    expect(&[SECRET, "x = 1", "print(tok)"], &[("NBT001", 2, 1)]);
}

#[test]
fn secret_through_fstring_concat_percent_format_and_str() {
    expect(&[SECRET, r#"print(f"token={tok}")"#], &[("NBT001", 1, 1)]);
    expect(
        &[SECRET, r#"msg = "Bearer " + tok"#, "display(msg)"],
        &[("NBT001", 2, 1)],
    );
    expect(&[SECRET, r#"print("t=%s" % tok)"#], &[("NBT001", 1, 1)]);
    expect(
        &[SECRET, r#"print("t={}".format(tok))"#],
        &[("NBT001", 1, 1)],
    );
    expect(&[SECRET, "print(str(tok).upper())"], &[("NBT001", 1, 1)]);
}

#[test]
fn scalars_about_a_secret_are_not_the_secret() {
    // Pysa's false positive: unknown calls pass taint through.
    expect(
        &[
            SECRET,
            "print(len(tok))",
            "print(tok == 'x')",
            "print(hashlib.sha256(tok.encode()).hexdigest())",
        ],
        &[],
    );
}

#[test]
fn redefinition_kills_taint() {
    expect(&[SECRET, r#"tok = "ok""#, "print(tok)"], &[]);
    expect(&[SECRET, "del tok", "print(tok)"], &[]);
}

#[test]
fn branches_merge_and_do_not_kill() {
    expect(
        &[SECRET, "if cond:\n    tok = 'ok'\nprint(tok)"],
        &[("NBT001", 1, 3)],
    );
    expect(
        &[
            SECRET,
            "if c:\n    tok = 'a'\nelse:\n    tok = 'b'\nprint(tok)",
        ],
        &[],
    );
}

#[test]
fn containers_subscripts_attributes_and_unpacking() {
    expect(
        &[SECRET, "cfg = {'auth': tok}", "print(cfg['auth'])"],
        &[("NBT001", 2, 1)],
    );
    expect(
        &[SECRET, "xs = []\nxs.append(tok)\nprint(xs)"],
        &[("NBT001", 1, 3)],
    );
    expect(
        &[SECRET, "a, b = tok, 'plain'\nprint(b)\nprint(a)"],
        &[("NBT001", 1, 3)],
    );
    expect(
        &[SECRET, "class C: pass\nc = C()\nc.t = tok\nprint(c)"],
        &[("NBT001", 1, 4)],
    );
}

#[test]
fn comprehensions_and_with() {
    expect(
        &[SECRET, "parts = [p for p in tok.split('.')]\nprint(parts)"],
        &[("NBT001", 1, 2)],
    );
    expect(
        &[SECRET, "with open('/tmp/t', 'w') as f:\n    f.write(tok)"],
        &[("NBT001", 1, 2), ("NBT009", 1, 1)],
    );
    expect(
        &["with dbutils.secrets.get('s', 'k') as s:\n    print(s)"],
        &[("NBT001", 0, 2)],
    );
}

#[test]
fn functions_defined_in_earlier_cells() {
    // argument -> return
    expect(
        &[
            "def wrap(x):\n    return 'Bearer ' + x",
            SECRET,
            "h = wrap(tok)",
            "print(h)",
        ],
        &[("NBT001", 3, 1)],
    );
    // argument -> sink inside the function (reported in the function's cell)
    expect(
        &["def show(x):\n    print(x)", SECRET, "show(tok)"],
        &[("NBT001", 0, 2)],
    );
    // a function not given the secret is clean
    expect(
        &["def show(x):\n    print(x)", SECRET, "show('hello')"],
        &[],
    );
    // lambdas
    expect(
        &[SECRET, "f = lambda v: v.strip()\nprint(f(tok))"],
        &[("NBT001", 1, 2)],
    );
}

#[test]
fn every_leak_sink() {
    expect(
        &[SECRET, "import logging\nlogging.info(tok)"],
        &[("NBT001", 1, 2)],
    );
    expect(
        &[SECRET, "logger.warning('t %s', tok)"],
        &[("NBT001", 1, 1)],
    );
    expect(
        &[
            SECRET,
            "import requests\nrequests.post('https://x.example', data={'t': tok})",
        ],
        &[("NBT001", 1, 2)],
    );
    expect(
        &[
            SECRET,
            "import requests as r\nr.get('https://x.example/?t=' + tok)",
        ],
        &[("NBT001", 1, 2)],
    );
    expect(
        &[SECRET, "dbutils.notebook.run('./child', 60, {'t': tok})"],
        &[("NBT001", 1, 1)],
    );
    expect(
        &[SECRET, "dbutils.jobs.taskValues.set(key='t', value=tok)"],
        &[("NBT001", 1, 1)],
    );
    expect(
        &[SECRET, "dbutils.fs.put('/tmp/t.txt', tok)"],
        &[("NBT001", 1, 1), ("NBT009", 1, 1)],
    );
    expect(
        &[SECRET, "spark.sql(f\"SELECT '{tok}'\")"],
        &[("NBT001", 1, 1)],
    );
    // the scope and key are not the secret
    expect(
        &["s = 'prod'\nv = dbutils.secrets.get(scope=s, key='k')\nprint(s)"],
        &[],
    );
}

#[test]
fn redaction_markers_are_evidence_of_a_credential() {
    expect(
        &["key = 'REDACTED_ACCESS_KEY'\nprint(key)"],
        &[("NBT001", 0, 2)],
    );
}

#[test]
fn environment_and_getpass_sources() {
    expect(
        &["import os\npw = os.environ['DB_PASSWORD']\nprint(pw)"],
        &[("NBT001", 0, 3)],
    );
    expect(&["import os\nhome = os.environ['HOME']\nprint(home)"], &[]);
    expect(
        &["import getpass\npw = getpass.getpass()\nprint(pw)"],
        &[("NBT001", 0, 3)],
    );
}

// ---------------------------------------------------------------- NBT002/NBT003 hardcoded credentials

#[test]
fn hardcoded_credentials() {
    // a literal Databricks token used for authentication: at the literal (NBT003) and at the sink (NBT002)
    expect(
        &[
            "TOKEN = 'dapi0123456789abcdef0123456789abcdef'",
            "import requests\nrequests.get('https://h.example', headers={'Authorization': TOKEN})",
        ],
        &[("NBT003", 0, 1), ("NBT002", 1, 2)],
    );
    // assembled by concatenation
    expect(
        &["t = 'dapi0123456789abcd' + 'ef0123456789abcdef'"],
        &[("NBT003", 0, 1)],
    );
    // AWS key in Spark configuration
    expect(
        &["spark.conf.set('fs.s3a.access.key', 'AKIAIOSFODNN7EXAMPLE')"],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
    // generic high-entropy token in a credential-named variable; placeholders are not
    expect(
        &["api_key = 'f8Kq2LmZ9xT4vB7nR3sW1yH6'"],
        &[("NBT003", 0, 1)],
    );
    expect(
        &[
            "api_key = 'changeme'",
            "password = ''",
            "token_url = 'https://login.example/oauth2/token'",
        ],
        &[],
    );
    // mount with extra_configs
    expect(
        &[
            "dbutils.fs.mount(source='wasbs://c@a.blob.core.windows.net', mount_point='/mnt/a', extra_configs={'k': 'AKIAIOSFODNN7EXAMPLE'})",
        ],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
}

// ---------------------------------------------------------------- NBT004 secret in session config

#[test]
fn secret_in_session_config() {
    expect(
        &[
            SECRET,
            "spark.conf.set('fs.azure.account.key.acct.dfs.core.windows.net', tok)",
        ],
        &[("NBT004", 1, 1)],
    );
    expect(
        &[
            SECRET,
            "spark.conf.set('spark.sql.shuffle.partitions', '8')",
        ],
        &[],
    );
}

// ---------------------------------------------------------------- NBT005 SQL injection

#[test]
fn sql_injection_from_widgets() {
    expect(
        &[
            "d = dbutils.widgets.get('run_date')",
            "spark.sql(f\"SELECT * FROM t WHERE d = '{d}'\")",
        ],
        &[("NBT005", 1, 1)],
    );
    expect(
        &[
            "d = dbutils.widgets.get('run_date')",
            "spark.sql('SELECT * FROM t WHERE d = :d', args={'d': d})",
        ],
        &[],
    );
}

#[test]
fn widget_references_in_sql_cells() {
    expect(
        &["%sql\nSELECT * FROM t\nWHERE d = '${run_date}' AND r = getArgument('region')"],
        &[("NBT005", 0, 3), ("NBT005", 0, 3)],
    );
    expect(
        &["%sql\nSELECT * FROM t WHERE price > 5 AND label = '$100'"],
        &[],
    );
}

#[test]
fn jdbc_url_with_a_password() {
    expect(
        &[
            "url = 'jdbc:sqlserver://db.example:1433;database=crm;user=etl;password=Winter2024!'",
            "df = spark.read.format('jdbc').option('url', url).load()",
        ],
        &[("NBT003", 0, 1), ("NBT002", 1, 1)],
    );
    expect(
        &[
            "url = 'jdbc:postgresql://db.example/crm'",
            "df = spark.read.format('jdbc').option('url', url).load()",
        ],
        &[],
    );
}

// ---------------------------------------------------------------- NBT006 TLS, NBT008 deserialization

#[test]
fn tls_verification_disabled() {
    expect(
        &["import requests\nrequests.get('https://x', verify=False)"],
        &[("NBT006", 0, 2)],
    );
    expect(
        &["import requests\nrequests.get('https://x', verify=True)"],
        &[],
    );
    expect(
        &["import ssl\nctx = ssl._create_unverified_context()"],
        &[("NBT006", 0, 2)],
    );
}

#[test]
fn unsafe_deserialization() {
    expect(
        &["import pickle\nm = pickle.load(open('/dbfs/m.pkl', 'rb'))"],
        &[("NBT008", 0, 2)],
    );
    expect(&["import yaml\nc = yaml.load(s)"], &[("NBT008", 0, 2)]);
    expect(
        &["import yaml\nc = yaml.load(s, Loader=yaml.SafeLoader)"],
        &[],
    );
    expect(
        &["import torch\nm = torch.load('m.pt')"],
        &[("NBT008", 0, 2)],
    );
    expect(
        &["import torch\nm = torch.load('m.pt', weights_only=True)"],
        &[],
    );
}

// ---------------------------------------------------------------- NBT007 exfiltration

#[test]
fn table_data_exfiltration() {
    expect(
        &[
            "df = spark.table('prod.crm.customers')",
            "df.toPandas().to_csv('/dbfs/tmp/c.csv')",
        ],
        &[("NBT007", 1, 1)],
    );
    expect(
        &[
            "df = spark.table('prod.crm.customers')",
            "df.write.mode('overwrite').save('/dbfs/tmp/c')",
        ],
        &[("NBT007", 1, 1)],
    );
    // writing to a governed table is not exfiltration
    expect(
        &[
            "df = spark.table('prod.crm.customers')",
            "df.write.saveAsTable('analytics.x')",
        ],
        &[],
    );
    expect(
        &[
            "df = spark.table('t')",
            "df.toPandas().to_csv('/Volumes/gov/x.csv')",
        ],
        &[],
    );
    // not table data
    expect(
        &["import pandas as pd\npd.DataFrame({'a': [1]}).to_csv('/dbfs/tmp/a.csv')"],
        &[],
    );
}

// ---------------------------------------------------------------- robustness

#[test]
fn a_cell_with_a_syntax_error_does_not_stop_the_others() {
    let a = run(&[SECRET, "def broken(:\n    pass", "print(tok)"]);
    assert_eq!(a.diagnostics.len(), 1);
    assert_eq!(a.diagnostics[0].loc.cell, 1);
    assert!(a.diagnostics[0].message.contains("syntax error"));
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.findings[0].location.cell, 2);
}

#[test]
fn magics_and_non_python_cells() {
    let a = run(&[
        "%pip install requests",
        "%sql\nSELECT 1",
        "%md\n# hi",
        SECRET,
        "!echo hi",
        "%run ./helpers",
        "print(tok)",
    ]);
    assert_eq!(a.python_cells, 5);
    assert!(a.diagnostics.is_empty(), "{:?}", a.diagnostics);
    assert_eq!(a.findings.len(), 1);
    assert_eq!(a.facts[5].magics, vec!["%run ./helpers".to_string()]);
}

#[test]
fn traces_lead_from_the_source_cell_to_the_sink_cell() {
    let a = run(&[
        "import requests",
        SECRET,
        "payload = {'t': tok}",
        "requests.post('https://hooks.example.net', json=payload)",
    ]);
    let f = &a.findings[0];
    assert_eq!(f.code, "NBT001");
    let cells: Vec<u32> = f.trace.iter().map(|s| s.loc.cell).collect();
    assert_eq!(cells, vec![1, 1, 2, 3]);
    assert!(f.trace[0].note.starts_with("source UserSecrets"));
    assert_eq!(f.trace[1].note, "assigned to `tok`");
    assert_eq!(f.trace[2].note, "assigned to `payload`");
    assert!(f.trace[3].note.contains("RequestSend"));
    // The sink span is the tainted argument.
    assert_eq!((f.location.line, f.location.col), (1, 49));
    assert_eq!(
        a.facts[3].urls,
        vec!["https://hooks.example.net".to_string()]
    );
    assert_eq!(a.facts[1].secrets, vec!["prod/api".to_string()]);
}

// ---------------------------------------------------------------- issue 17: recall on ordinary Python

/// Hardcoded passwords whatever they look like, wherever the name is: variables, attributes, subscripts,
/// keyword arguments, defaults, class attributes, dict literals — short ones too.
#[test]
fn hardcoded_passwords_in_every_position() {
    for (code, line) in [
        ("password = 'blerg'", 1),
        ("DB_PASSWORD = \"hunter2\"", 1),
        ("class Config:\n    client_secret = 's3cr3t-value'", 2),
        ("conf = {}\nconf['password'] = 'blerg'", 2),
        (
            "import pymysql\ncon = pymysql.connect(host='db', user='app', password='blerg')",
            2,
        ),
        ("def connect(host, pwd='blerg'):\n    return host", 1),
        ("settings = {'api_key': 'abc123', 'env': 'prod'}", 1),
        (
            "class C:\n    def __init__(self):\n        self.token = 'abc123xyz'",
            3,
        ),
    ] {
        expect(&[code], &[("NBT003", 0, line)]);
    }
    // Not credentials: empty, placeholders, names that only contain the word, values from elsewhere.
    expect(
        &[
            "password = ''",
            "api_key = '<your key>'",
            "token = '${TOKEN}'",
            "password = 'changeme'",
            "password = 'your password here'",
            "api_key = 'Enter API key'",
            "token = ' padded '",
            "password_field = 'pw_input'",
            "token_url = 'https://login.example/token'",
            "secret_scope = 'prod'",
            "import os\npassword = os.environ['DB_PASSWORD']",
            "def f(password=None):\n    return password",
        ],
        &[],
    );
}

/// A credential compared with a literal is a hardcoded one (`if password == "root"`): variables,
/// attributes and keys, on either side, `==` and `!=`; not an empty string, a placeholder, another variable,
/// or a name that is not a credential's.
#[test]
fn credential_compared_with_a_literal() {
    for (code, line) in [
        (
            "def login(password):\n    if password == 'root':\n        return True",
            2,
        ),
        ("def ok(req):\n    return req.token != 'tok-8812'", 2),
        (
            "def ok(form):\n    return 'opensesame' == form['passphrase']",
            2,
        ),
        (
            "def ok(o):\n    return o.password == 'correct horse battery'",
            2,
        ),
    ] {
        expect(&[code], &[("NBT003", 0, line)]);
    }
    expect(
        &[
            "def f(password):\n    return password == ''",
            "def f(password):\n    return password == 'changeme'",
            "def f(password):\n    return password == 'your password here'",
            "def f(password, stored):\n    return password == stored",
            "def f(user):\n    return user == 'admin'",
            "def f(password):\n    return password is None",
        ],
        &[],
    );
}

/// Credentials in configuration are found by key, whatever the value looks like.
#[test]
fn credentials_in_configuration_by_key() {
    expect(
        &["spark.conf.set('fs.azure.account.key.acct.dfs.core.windows.net', 'short-key')"],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
    expect(
        &["sc._jsc.hadoopConfiguration().set('fs.s3a.secret.key', 'abc/def')"],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
    expect(
        &[
            "df = spark.read.format('jdbc').option('url', 'jdbc:x').option('password', 'pw123').load()",
        ],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
    expect(
        &[
            "dbutils.fs.mount(source='wasbs://c@a.blob.core.windows.net', mount_point='/mnt/a', extra_configs={'fs.azure.sas.c.a.blob.core.windows.net': 'sv=2020&sig=abc'})",
        ],
        &[("NBT002", 0, 1), ("NBT003", 0, 1)],
    );
    // Non-credential keys with literal values are configuration, not secrets.
    expect(
        &[
            "spark.conf.set('spark.sql.shuffle.partitions', '200')\nspark.conf.set('fs.s3a.endpoint', 's3.eu-west-1.amazonaws.com')",
        ],
        &[],
    );
}

/// Weak protocol versions by name wherever they appear, also as pyOpenSSL is sometimes (wrongly) imported.
#[test]
fn weak_tls_protocol_names_from_pyopenssl_spellings() {
    expect(
        &["from pyOpenSSL import SSL\nctx = SSL.Context(method=SSL.TLSv1_METHOD)"],
        &[("NBT006", 0, 2)],
    );
    expect(
        &["from OpenSSL import SSL\nctx = SSL.Context(method=SSL.TLSv1_2_METHOD)"],
        &[],
    );
}

/// verify=False on any client method; the safe default is not reported.
#[test]
fn tls_verification_disabled_on_sessions_and_clients() {
    for code in [
        "import requests\nrequests.Session().put('https://h', data=b'x', verify=False)",
        "import requests\ns = requests.Session()\ns.delete('https://h', verify=False)",
        "import httpx\nhttpx.Client().get('https://h', verify=False)",
    ] {
        let line = code.lines().count() as u32;
        expect(&[code], &[("NBT006", 0, line)]);
    }
    expect(
        &[
            "import requests\nrequests.Session().put('https://h', verify=True)\nrequests.get('https://h', verify='/etc/ca.pem')",
        ],
        &[],
    );
}

/// Unpicklers and jsonpickle deserialize arbitrary objects; yaml with a safe loader (keyword or positional)
/// does not.
#[test]
fn deserialization_by_unpicklers_and_safe_yaml() {
    for code in [
        "import pickle\nobj = pickle.Unpickler(open('m.pkl', 'rb')).load()",
        "import dill\nobj = dill.Unpickler(f).load()",
        "import jsonpickle\nobj = jsonpickle.decode(text)",
    ] {
        expect(&[code], &[("NBT008", 0, 2)]);
    }
    expect(
        &[
            "import yaml\ncfg = yaml.load(s, yaml.SafeLoader)",
            "import yaml\nfrom yaml import SafeLoader\ncfg = yaml.load(s, Loader=SafeLoader)",
        ],
        &[],
    );
    expect(
        &["import yaml\ncfg = yaml.load(s, yaml.Loader)"],
        &[("NBT008", 0, 2)],
    );
}

/// Hardcoded temporary paths: a low-severity finding at the literal.
#[test]
fn hardcoded_temporary_paths() {
    expect(&["p = '/tmp/export.csv'"], &[("NBT009", 0, 1)]);
    expect(
        &["p = '/var/tmp'\nq = '/dev/shm/x'"],
        &[("NBT009", 0, 1), ("NBT009", 0, 2)],
    );
    expect(&["p = '/tmpfile'\nq = '/dbfs/tmp/x'\nr = 'tmp/x'"], &[]);
}

/// Secret sources beyond bare `dbutils`: the Databricks SDK's spellings and keyring, reaching print or
/// logging.
#[test]
fn secret_sources_of_the_sdk_and_keyring() {
    for code in [
        "from databricks.sdk.runtime import dbutils\ns = dbutils.secrets.get('prod', 'api')\nprint(s)",
        "from databricks.sdk import WorkspaceClient\nw = WorkspaceClient()\ns = w.dbutils.secrets.get(scope='prod', key='api')\nprint(s)",
        "import keyring\ns = keyring.get_password('svc', 'me')\nimport logging\nlogging.info(s)",
    ] {
        let line = code.lines().count() as u32;
        expect(&[code], &[("NBT001", 0, line)]);
    }
}

// ---------------------------------------------------------------- issue 17: precision

/// A secret that authenticates a request is not leaked to that service; the response is not the secret.
/// A secret in the URL, the body or another header still is.
#[test]
fn authenticating_with_a_secret_is_not_a_leak() {
    expect(
        &[
            "import requests",
            SECRET,
            "r = requests.get('https://api.example/v1', headers={'Authorization': 'Bearer ' + tok, 'Accept': 'application/json'})\nprint(r.status_code)\nprint(r.json())",
            "r2 = requests.post('https://api.example/v1', auth=('svc', tok), json={'q': 1})\nprint(r2.text)",
        ],
        &[],
    );
    expect(
        &[
            "import requests",
            SECRET,
            "requests.get('https://api.example/v1?key=' + tok)",
            "requests.post('https://api.example/v1', json={'token': tok})",
            "requests.get('https://other.example', headers={'X-Debug': tok})",
        ],
        &[("NBT001", 2, 1), ("NBT001", 3, 1), ("NBT001", 4, 1)],
    );
}

/// `spark.read.csv(path)` reads a file: not an export of table data.
#[test]
fn readers_are_not_writers() {
    expect(
        &[
            "df = spark.table('prod.customers')",
            "other = spark.read.csv('/dbfs/FileStore/in.csv')\nj = spark.read.format('json').json('/dbfs/tmp/in.json')",
        ],
        &[],
    );
    expect(
        &[
            "df = spark.table('prod.customers')",
            "df.write.csv('/dbfs/FileStore/out')",
        ],
        &[("NBT007", 1, 1)],
    );
}

/// Weak TLS/SSL protocol versions, by name (also imported), in `ssl` and pyOpenSSL; modern ones are fine.
#[test]
fn weak_tls_protocol_versions() {
    for code in [
        "import ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLSv1)",
        "import ssl\ns = ssl.wrap_socket(sock, ssl_version=ssl.PROTOCOL_SSLv3)",
        "from OpenSSL import SSL\nctx = SSL.Context(SSL.TLSv1_1_METHOD)",
        "from ssl import PROTOCOL_SSLv2\nctx = make(PROTOCOL_SSLv2)",
    ] {
        expect(&[code], &[("NBT006", 0, 2)]);
    }
    expect(
        &[
            "import ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nctx.minimum_version = ssl.TLSVersion.TLSv1_2",
        ],
        &[],
    );
}

/// A widget value checked against a fixed allow-list before it is built into SQL is not injectable; the
/// same value unchecked, or checked against something not fixed, still is.
#[test]
fn allow_listed_values_are_not_injectable() {
    expect(
        &[
            "env = dbutils.widgets.get('env')",
            "if env not in {'dev', 'prod'}:\n    raise ValueError(env)",
            "spark.sql(f'SELECT * FROM {env}.sales')",
        ],
        &[],
    );
    expect(
        &[
            "t = dbutils.widgets.get('table')\nassert t in ('orders', 'customers')\nspark.sql('SELECT * FROM ' + t)",
        ],
        &[],
    );
    expect(
        &[
            "env = dbutils.widgets.get('env')",
            "if env not in allowed:\n    raise ValueError(env)",
            "spark.sql(f'SELECT * FROM {env}.sales')",
        ],
        &[("NBT005", 2, 1)],
    );
    expect(
        &[
            "env = dbutils.widgets.get('env')",
            "if env not in {'dev', 'prod'}:\n    print('unexpected')",
            "spark.sql(f'SELECT * FROM {env}.sales')",
        ],
        &[("NBT005", 2, 1)],
    );
}

/// Dicts with literal keys are tracked per key: only the key that holds the secret carries it.
#[test]
fn dict_keys_are_tracked_one_by_one() {
    let cfg = "cfg = {'password': dbutils.secrets.get('prod', 'db'), 'env': 'prod'}";
    expect(&[cfg, "print(cfg['env'])\nprint(cfg.get('env'))"], &[]);
    expect(&[cfg, "print(cfg['password'])"], &[("NBT001", 1, 1)]);
    expect(&[cfg, "print(cfg.get('password'))"], &[("NBT001", 1, 1)]);
    expect(&[cfg, "print(cfg)"], &[("NBT001", 1, 1)]);
    // A key not known in advance may be any of them.
    expect(&[cfg, "k = input()\nprint(cfg[k])"], &[("NBT001", 1, 2)]);
    // Keys set one by one.
    expect(
        &[
            "conf = {}\nconf['token'] = dbutils.secrets.get('p', 't')\nconf['region'] = 'eu'",
            "print(conf['region'])",
        ],
        &[],
    );
    expect(
        &[
            "conf = {}\nconf['token'] = dbutils.secrets.get('p', 't')",
            "import logging\nlogging.info(conf['token'])",
        ],
        &[("NBT001", 1, 2)],
    );
}

/// Issue 20: a cell's table facts come from the one extractor the search index uses (`tables`), so the
/// analysis and `table:` search never disagree: SQL inside `spark.sql`, `%sql` cells and quoted names
/// included, normalised.
#[test]
fn cell_facts_tables_are_the_search_index_tables() {
    let a = run(&[
        "df = spark.sql(\"SELECT * FROM `Prod`.`Sales`.`Orders` o JOIN prod.crm.customers c ON o.c = c.id\")",
        "df.write.saveAsTable('analytics.scratch.joined')",
        "%sql\nINSERT INTO audit.copy SELECT * FROM prod.sales.orders",
    ]);
    assert_eq!(
        a.facts[0].tables_read,
        ["prod.crm.customers", "prod.sales.orders"]
    );
    assert_eq!(a.facts[1].tables_written, ["analytics.scratch.joined"]);
    assert_eq!(a.facts[2].tables_read, ["prod.sales.orders"]);
    assert_eq!(a.facts[2].tables_written, ["audit.copy"]);
    let first = Cell::new(
        "0",
        "df = spark.sql(\"SELECT * FROM `Prod`.`Sales`.`Orders` o JOIN prod.crm.customers c ON o.c = c.id\")",
        Some("python"),
    );
    let names: Vec<String> = nbtrail_analyzer::tables::tables(&first)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, a.facts[0].tables_read);
}
