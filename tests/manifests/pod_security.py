"""The Pod Security Standards' `restricted` profile (baseline included), checked on a pod spec.

Pod Security Admission enforces it in the namespace (manifests/base/namespace.yaml); checking the
rendered pod templates here finds a violation before the API server refuses the pods. The checks follow
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (Linux pods).

    violations(pod_spec)   # [] when the pod may run under `restricted`
"""
from __future__ import annotations

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def violations(pod: dict) -> list[str]:
    found = []
    psc = pod.get("securityContext") or {}
    containers = [*pod.get("initContainers", []), *pod.get("containers", []), *pod.get("ephemeralContainers", [])]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            found.append(f"pod: {field} must not be true")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']}: type {sorted(kinds - RESTRICTED_VOLUMES)} is not allowed")
    for sysctl in psc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"pod: sysctl {sysctl['name']} is not allowed")
    found += _context_errors("pod", psc)
    for c in containers:
        name, sc = f"container {c['name']}", c.get("securityContext") or {}
        found += _context_errors(name, sc)
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: may add only NET_BIND_SERVICE")
        if (sc.get("procMount") or "Default") != "Default":
            found.append(f"{name}: procMount must be Default")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            found.append(f"{name}: runAsNonRoot must be true (pod or container)")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in SECCOMP_OK:
            found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, is {seccomp}")
    return found


def _context_errors(where: str, sc: dict) -> list[str]:
    found = []
    if sc.get("runAsNonRoot") is False:
        found.append(f"{where}: runAsNonRoot is false")
    if sc.get("runAsUser") == 0:
        found.append(f"{where}: runAsUser 0")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}: seccompProfile Unconfined")
    if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}: appArmorProfile Unconfined")
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{where}: seLinuxOptions not allowed")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where}: hostProcess")
    return found
