"""nginx in front of MLflow: the upstream, the proxy snippet every site includes, the HTTP site, and the
sandbox (a drop-in for the distribution's nginx.service)."""

from __future__ import annotations

import server_guard
from userdata import layout
from userdata.files import HostFile
from userdata.settings import HostSettings
from userdata.template import fill

# Requests in flight per client address (issue 23, hole 4): more than one client moves at once (MLflow's
# client: at most 20 artifact transfers; a browser: 6 connections, or its HTTP/2 streams), and a team
# behind one office address shares it; MLflow's client retries the 429 of the excess.
REQUESTS_PER_ADDRESS = 128
PER_ADDRESS_ZONE = "mlflow_per_address"


def upstream() -> str:
    return fill(
        "nginx-upstream.conf",
        upstream=layout.NGINX_UPSTREAM_NAME,
        server=f"{layout.MLFLOW_BIND_HOST}:{layout.MLFLOW_PORT}",
        per_address_zone=PER_ADDRESS_ZONE,
    )


# The Application Load Balancer's idle timeout (components/load_balancer.py, which takes it from here:
# userdata knows nothing of Pulumi): as long as nginx waits for MLflow (proxy_read_timeout).
LOAD_BALANCER_IDLE_TIMEOUT_SECONDS = 3600
KEEPALIVE_MARGIN_SECONDS = 60

# Behind the load balancer, the site's geo/map blocks define these from the headers of trusted peers.
LOAD_BALANCER_FORWARDED_FOR = "$mlflow_forwarded_for"
LOAD_BALANCER_FORWARDED_PROTO = "$mlflow_forwarded_proto"


def proxy_snippet(s: HostSettings | None = None) -> str:
    behind = s is not None and s.behind_load_balancer
    return fill(
        "nginx-proxy.conf",
        upstream=layout.NGINX_UPSTREAM_NAME,
        forwarded_for=LOAD_BALANCER_FORWARDED_FOR if behind else "$proxy_add_x_forwarded_for",
        forwarded_proto=LOAD_BALANCER_FORWARDED_PROTO if behind else "$scheme",
        body_limit=f"{server_guard.BODY_LIMIT_MIB}m",
        per_address_zone=PER_ADDRESS_ZONE,
        per_address=str(REQUESTS_PER_ADDRESS),
    )


def errors_snippet() -> str:
    return fill("nginx-errors.conf", fence_flag=layout.FENCE_FLAG)


def http_site(s: HostSettings) -> str:
    if s.behind_load_balancer:
        return load_balancer_site(s)
    return fill(
        "nginx-http-site.conf",
        http_port=str(layout.HTTP_PORT),
        server_names=" ".join(dict.fromkeys([s.public_hostname, s.public_ip])),
        proxy_snippet=layout.NGINX_PROXY_SNIPPET,
        errors_snippet=layout.NGINX_ERRORS_SNIPPET,
    )


def load_balancer_site(s: HostSettings) -> str:
    """Port 80 for the load balancer (the hosts' security group admits nobody else); X-Forwarded-*
    believed only from the VPC, where the load balancer's addresses are."""
    return fill(
        "nginx-load-balancer-site.conf",
        http_port=str(layout.HTTP_PORT),
        server_names=s.public_hostname,
        trusted_cidr=s.load_balancer_cidr,
        load_balancer_idle_timeout=str(LOAD_BALANCER_IDLE_TIMEOUT_SECONDS),
        keepalive_timeout=str(LOAD_BALANCER_IDLE_TIMEOUT_SECONDS + KEEPALIVE_MARGIN_SECONDS),
        forwarded_for=LOAD_BALANCER_FORWARDED_FOR,
        forwarded_proto=LOAD_BALANCER_FORWARDED_PROTO,
        proxy_snippet=layout.NGINX_PROXY_SNIPPET,
        errors_snippet=layout.NGINX_ERRORS_SNIPPET,
    )


def hardening_drop_in() -> str:
    return fill("nginx-hardening.conf", writable_paths=" ".join(layout.NGINX_WRITABLE_PATHS))


def nginx_files(s: HostSettings) -> list[HostFile]:
    # The sandbox is written before the packages, so the nginx package's first start is sandboxed; the
    # sites after them, so that start never meets a half-written config.
    files = [
        HostFile(layout.NGINX_HARDENING_DROP_IN, hardening_drop_in()),
        HostFile(layout.NGINX_UPSTREAM, upstream(), defer=True),
        HostFile(layout.NGINX_PROXY_SNIPPET, proxy_snippet(s), defer=True),
        HostFile(layout.NGINX_ERRORS_SNIPPET, errors_snippet(), defer=True),
    ]
    if s.tls == "off":
        files.append(HostFile(layout.NGINX_HTTP_SITE, http_site(s), defer=True))
    return files

