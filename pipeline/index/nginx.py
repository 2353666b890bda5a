"""nginx settings for serving a static index in production (`rewheel index nginx-config`).

The same tree `rewheel serve` answers, with the same rules: PEP 691 content negotiation on Accept (JSON for
clients that ask for it, HTML otherwise), no folder listings, nothing hidden (.rewheel/, temporaries)
served, and no symbolic link followed (`disable_symlinks on`), so nothing outside the tree is reachable.

Two forms:
- `site(root, listen)`: a file for nginx's http context (Debian: /etc/nginx/conf.d/rewheel-index.conf),
  a `map` and a `server` block; nginx's own user (www-data) must be able to read the tree.
- `standalone(root, listen, runtime)`: a whole nginx.conf that runs in the foreground with its pid file,
  logs and temporary folders under `runtime` (for tests, CI and a quick look: `nginx -c FILE -e LOG`).
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.index.wheelinfo import PublishError

JSON_V1 = "application/vnd.pypi.simple.v1+json"
# Paths and addresses go into the configuration verbatim: refuse what nginx would read as syntax.
_UNSAFE = re.compile(r'["\\$;{}\s#\']')


def _checked(value: str, what: str) -> str:
    if not value or _UNSAFE.search(value):
        raise PublishError(f"{value!r}: cannot be used as the {what} in an nginx configuration")
    return value


def site(root: Path, listen: str = "127.0.0.1:8080", *, access_log: str | None = None) -> str:
    """The map and server block for `root` (an index root made by `rewheel publish`)."""
    root_text = _checked(str(root.resolve()), "index folder")
    listen = _checked(listen, "listen address")
    log = f"    access_log {_checked(access_log, 'log file')} rewheel;\n" if access_log else ""
    return f"""# Written by `rewheel index nginx-config`: the static index at {root_text}
# PEP 691: clients that ask for JSON get index.json; everyone else (old pips, browsers) index.html.
map $http_accept $rewheel_page {{
    default index.html;
    "~*application/vnd\\.pypi\\.simple\\.(v1|latest)\\+json" index.json;
}}

log_format rewheel '$remote_addr "$request" $status $body_bytes_sent "$sent_http_content_type"';

server {{
    listen {listen};
    server_name _;
    root {root_text};
{log}    autoindex off;
    # No symbolic link is followed anywhere under the root: a link planted in the tree cannot expose
    # what lies outside it.
    disable_symlinks on;

    # rewheel's lock folder, temporaries of a running publisher, any other dot file: never served.
    location ~ /\\. {{
        return 404;
    }}

    location /simple/ {{
        index $rewheel_page;
        location ~ /index\\.json$ {{
            types {{ }}
            default_type {JSON_V1};
            add_header Vary Accept always;
            add_header Cache-Control "max-age=60" always;
        }}
        location ~ /index\\.html$ {{
            types {{ }}
            default_type text/html;
            add_header Vary Accept always;
            add_header Cache-Control "max-age=60" always;
        }}
    }}

    location /files/ {{
        types {{ }}
        default_type application/octet-stream;  # wheels and their .metadata files, immutable
        location ~ \\.proof\\.json$ {{
            types {{ }}
            default_type application/json;  # proof records, read by people and `rewheel report`
        }}
    }}

    # The landing pages for people (landing.py); installers never ask for them.
    location = / {{
        types {{ }}
        default_type text/html;
        add_header Cache-Control "max-age=60" always;
        try_files /index.html =404;
    }}
    location /packages/ {{
        types {{ }}
        default_type text/html;
        add_header Cache-Control "max-age=60" always;
    }}

    location / {{
        return 404;
    }}
}}
"""


def standalone(root: Path, listen: str, runtime: Path) -> str:
    """A complete nginx.conf running in the foreground, everything it writes under `runtime`."""
    run = _checked(str(runtime.resolve()), "runtime folder")
    return f"""# Written by `rewheel index nginx-config --standalone`: run with nginx -c THIS_FILE -e {run}/error.log
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log;

events {{
    worker_connections 1024;
}}

http {{
    sendfile on;
    client_body_temp_path {run}/client_body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;

{site(root, listen, access_log=f"{run}/access.log")}}}
"""
