"""nginx in front of MLflow: the upstream, the proxy snippet every site includes, the HTTP site, and the
sandbox (a drop-in for the distribution's nginx.service)."""

from __future__ import annotations

from userdata import layout
from userdata.files import HostFile
from userdata.settings import HostSettings
from userdata.template import fill


def upstream() -> str:
    return fill(
        "nginx-upstream.conf",
        upstream=layout.NGINX_UPSTREAM_NAME,
        server=f"{layout.MLFLOW_BIND_HOST}:{layout.MLFLOW_PORT}",
    )


def proxy_snippet() -> str:
    return fill("nginx-proxy.conf", upstream=layout.NGINX_UPSTREAM_NAME)


def http_site(s: HostSettings) -> str:
    return fill(
        "nginx-http-site.conf",
        http_port=str(layout.HTTP_PORT),
        server_names=" ".join(dict.fromkeys([s.public_hostname, s.public_ip])),
        proxy_snippet=layout.NGINX_PROXY_SNIPPET,
    )


def hardening_drop_in() -> str:
    return fill("nginx-hardening.conf", writable_paths=" ".join(layout.NGINX_WRITABLE_PATHS))


def nginx_files(s: HostSettings) -> list[HostFile]:
    # The sandbox is written before the packages, so the nginx package's first start is sandboxed; the
    # sites after them, so that start never meets a half-written config.
    files = [
        HostFile(layout.NGINX_HARDENING_DROP_IN, hardening_drop_in()),
        HostFile(layout.NGINX_UPSTREAM, upstream(), defer=True),
        HostFile(layout.NGINX_PROXY_SNIPPET, proxy_snippet(), defer=True),
    ]
    if s.tls == "off":
        files.append(HostFile(layout.NGINX_HTTP_SITE, http_site(s), defer=True))
    return files


def http_site_commands(s: HostSettings) -> list[str]:
    if s.tls != "off":
        return []
    return [
        f"rm -f {layout.NGINX_DEFAULT_SITE_ENABLED}",
        f"ln -sfn {layout.NGINX_HTTP_SITE} {layout.NGINX_HTTP_SITE_ENABLED}",
        "nginx -t && systemctl reload-or-restart nginx",
    ]
