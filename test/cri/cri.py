#!/usr/bin/env python3
"""A small CRI client, calling containerd's CRI gRPC API as kubelet does.

    cri.py --endpoint SOCK --gen DIR COMMAND ...

`gen` compiles cri.proto (next to this file) into DIR with grpcio-tools; every
other command imports the generated code from DIR, so nothing generated lives
in the source tree. Commands print JSON or plain lines for test/cri_e2e.sh,
and exit 1 with the runtime's error message on stderr when a call fails.

  daemonset   the DaemonSet's pod from deploy/*.yaml: sandbox and container
              config (command, args, env, securityContext, volume mounts,
              hostNetwork/hostPID) read from the manifest, host paths
              remapped, then the postStart hook and the readiness probe run
              through ExecSync, as kubelet runs exec hooks and probes.
  prestop     the container's preStop hook from the manifest (ExecSync).
  run-pod     RunPodSandbox with metadata, labels, annotations, cgroup parent.
  container   CreateContainer + StartContainer in a pod.
  exec        ExecSync.
  status      PodSandboxStatus (verbose): state, IP, netns path, pause PID.
  cstatus     ContainerStatus (verbose): state, exit code, PID.
  stop-pod, remove-pod, stop-container, remove-container
  pods        several pods at once (one thread each): run-pod + sidecar and
              app containers, or stop + remove them.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    print(f"cri.py: {msg}", file=sys.stderr)
    sys.exit(1)


def generate(gen_dir):
    from grpc_tools import protoc, _proto  # noqa: F401  (grpcio-tools)
    import grpc_tools
    os.makedirs(gen_dir, exist_ok=True)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={gen_dir}",
                      f"--grpc_python_out={gen_dir}", os.path.join(HERE, "cri.proto")])
    if rc != 0:
        die(f"protoc cri.proto failed ({rc})")


class Cri:
    def __init__(self, endpoint, gen_dir):
        sys.path.insert(0, gen_dir)
        try:
            import grpc
            import cri_pb2
            import cri_pb2_grpc
        except ImportError as e:
            die(f"{e}: run `cri.py gen` first; grpcio comes from tools/setup.sh's venv")
        self.grpc, self.pb = grpc, cri_pb2
        self.channel = grpc.insecure_channel(f"unix://{endpoint}")
        self.rt = cri_pb2_grpc.RuntimeServiceStub(self.channel)

    def call(self, method, request, timeout=120):
        try:
            return getattr(self.rt, method)(request, timeout=timeout)
        except self.grpc.RpcError as e:
            raise CriError(f"{method}: {e.code().name}: {e.details()}") from None


class CriError(Exception):
    pass


def kv_list(items):
    out = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep:
            die(f"{item!r} is not KEY=VALUE")
        out[k] = v
    return out


# --- pods and containers ------------------------------------------------------

def sandbox_config(c, name, namespace, uid, labels, annotations, cgroup_parent, log_dir,
                   host_network=False, host_pid=False, privileged=False, attempt=0):
    pb = c.pb
    node = pb.NODE
    ns = pb.NamespaceOption(network=node if host_network else pb.POD,
                            pid=node if host_pid else pb.CONTAINER, ipc=pb.POD)
    # kubelet's own labels, on top of the pod's.
    labels = dict(labels, **{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                             "io.kubernetes.pod.uid": uid})
    annotations = dict(annotations, **{"kubernetes.io/config.source": "api"})
    os.makedirs(log_dir, exist_ok=True)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        hostname="" if host_network else name,
        log_directory=log_dir,
        dns_config=pb.DNSConfig(),
        labels=labels,
        annotations=annotations,
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns, privileged=privileged),
        ),
    )


def run_pod(c, cfg):
    return c.call("RunPodSandbox", c.pb.RunPodSandboxRequest(config=cfg), timeout=180).pod_sandbox_id


def start_container(c, pod_id, sb_cfg, name, image, command, args=(), envs=None, mounts=(),
                    user=None, privileged=False, host_network=False, host_pid=False, attempt=0):
    pb = c.pb
    sc = pb.LinuxContainerSecurityContext(
        privileged=privileged,
        namespace_options=pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                                             pid=pb.NODE if host_pid else pb.CONTAINER, ipc=pb.POD),
    )
    if user is not None:
        sc.run_as_user.value = user
        sc.run_as_group.value = user
    cfg = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=image),
        command=command, args=list(args),
        envs=[pb.KeyValue(key=k, value=v) for k, v in (envs or {}).items()],
        mounts=list(mounts),
        labels={"io.kubernetes.container.name": name},
        log_path=f"{name}/{attempt}.log",
        linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(), security_context=sc),
    )
    cid = c.call("CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=cfg, sandbox_config=sb_cfg)).container_id
    c.call("StartContainer", pb.StartContainerRequest(container_id=cid))
    return cid


def exec_sync(c, cid, cmd, timeout=30):
    r = c.call("ExecSync", c.pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout), timeout=timeout + 10)
    return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def pod_status(c, pod_id):
    r = c.call("PodSandboxStatus", c.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True))
    info = json.loads(r.info.get("info", "{}"))
    netns = ""
    for ns in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network":
            netns = ns.get("path", "")
    return {
        "id": r.status.id,
        "state": c.pb.PodSandboxState.Name(r.status.state),
        "ip": r.status.network.ip,
        "netns": netns,
        "pid": info.get("pid", 0),
        "name": r.status.metadata.name,
        "namespace": r.status.metadata.namespace,
    }


def container_status(c, cid):
    r = c.call("ContainerStatus", c.pb.ContainerStatusRequest(container_id=cid, verbose=True))
    info = json.loads(r.info.get("info", "{}"))
    return {"state": c.pb.ContainerState.Name(r.status.state), "exit_code": r.status.exit_code,
            "reason": r.status.reason, "pid": info.get("pid", 0)}


# --- the DaemonSet from the manifests ------------------------------------------

PROPAGATION = {None: "PROPAGATION_PRIVATE", "None": "PROPAGATION_PRIVATE",
               "HostToContainer": "PROPAGATION_HOST_TO_CONTAINER", "Bidirectional": "PROPAGATION_BIDIRECTIONAL"}


def load_manifests(paths):
    import yaml
    docs = []
    for p in paths:
        with open(p) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def find(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        die(f"want exactly one {kind} in the manifests, found {len(found)}")
    return found[0]


def remap_path(path, remaps, node_paths):
    """The test's directory for a hostPath of the manifest; refuses any other."""
    for src, dst in remaps.items():
        if path == src or path.startswith(src.rstrip("/") + "/"):
            return dst + path[len(src.rstrip("/")):]
    if path in node_paths:
        return path
    die(f"hostPath {path} is neither remapped (--remap) nor one of the node's own (--node-path): refusing to mount it")


def daemonset_spec(a):
    """Sandbox and container settings of the DaemonSet's (first) container."""
    docs = load_manifests(a.manifest)
    ds = find(docs, "DaemonSet")
    tpl = ds["spec"]["template"]
    spec = tpl["spec"]
    ctr = spec["containers"][0]
    remaps = kv_list(a.remap)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = []
    for vm in ctr.get("volumeMounts", []):
        vol = volumes.get(vm["name"]) or die(f"volumeMount {vm['name']} has no volume")
        if "hostPath" in vol:
            host = remap_path(vol["hostPath"]["path"], remaps, set(a.node_path))
            # kubelet makes a missing DirectoryOrCreate; here only the test's
            # own directories are made, never a path of the machine's (the
            # node's own paths exist on the node's tmpfs).
            if vol["hostPath"].get("type") == "DirectoryOrCreate" and host != vol["hostPath"]["path"]:
                os.makedirs(host, exist_ok=True)
        elif "configMap" in vol:
            # kubelet writes the ConfigMap's keys as files of a directory.
            cm_name = vol["configMap"]["name"]
            cms = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == cm_name]
            if len(cms) != 1:
                die(f"ConfigMap {cm_name} not in the manifests")
            host = os.path.join(a.volume_dir, vm["name"])
            os.makedirs(host, exist_ok=True)
            for key, text in cms[0].get("data", {}).items():
                with open(os.path.join(host, key), "w") as f:
                    f.write(text)
        else:
            die(f"volume {vm['name']}: only hostPath and configMap volumes are supported")
        mounts.append({"container_path": vm["mountPath"], "host_path": host,
                       "readonly": bool(vm.get("readOnly")), "propagation": PROPAGATION[vm.get("mountPropagation")]})
    envs = {}
    for e in ctr.get("env", []):
        if "value" not in e:
            die(f"env {e['name']}: only literal values are supported")
        envs[e["name"]] = e["value"]
    sc = ctr.get("securityContext", {})
    return {
        "name": ds["metadata"]["name"], "namespace": ds["metadata"]["namespace"],
        "labels": tpl.get("metadata", {}).get("labels", {}), "annotations": tpl.get("metadata", {}).get("annotations", {}),
        "host_network": bool(spec.get("hostNetwork")), "host_pid": bool(spec.get("hostPID")),
        "container": ctr["name"], "image": ctr["image"], "command": ctr.get("command", []), "args": ctr.get("args", []),
        "envs": envs, "mounts": mounts, "privileged": bool(sc.get("privileged")),
        "post_start": ctr.get("lifecycle", {}).get("postStart", {}).get("exec", {}).get("command"),
        "pre_stop": ctr.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command"),
        "readiness": ctr.get("readinessProbe", {}).get("exec", {}).get("command"),
        "readiness_timeout": ctr.get("readinessProbe", {}).get("timeoutSeconds", 1),
    }


def cmd_daemonset(c, a):
    s = daemonset_spec(a)
    pb = c.pb
    sb = sandbox_config(c, f"{s['name']}-{a.node}", s["namespace"], a.pod_uid or str(uuid.uuid4()), s["labels"],
                        s["annotations"], a.cgroup_parent, a.log_dir, s["host_network"], s["host_pid"], s["privileged"])
    pod_id = a.pod or run_pod(c, sb)
    mounts = [pb.Mount(container_path=m["container_path"], host_path=m["host_path"], readonly=m["readonly"],
                       propagation=pb.MountPropagation.Value(m["propagation"])) for m in s["mounts"]]
    cid = start_container(c, pod_id, sb, s["container"], s["image"], s["command"], s["args"], s["envs"], mounts,
                          privileged=s["privileged"], host_network=s["host_network"], host_pid=s["host_pid"],
                          attempt=a.attempt)
    result = {"pod": pod_id, "container": cid, "pod_uid": sb.metadata.uid}
    print(json.dumps(result), flush=True)
    if s["post_start"]:
        rc, out, err = exec_sync(c, cid, s["post_start"], timeout=60)
        sys.stderr.write(f"postStart {s['post_start']} exited {rc}\n{out}{err}")
        if rc != 0:
            die(f"the postStart hook failed ({rc}); kubelet would kill the container")
    if s["readiness"]:
        deadline = time.time() + a.ready_timeout
        while True:
            rc, out, err = exec_sync(c, cid, s["readiness"], timeout=s["readiness_timeout"])
            if rc == 0:
                break
            if time.time() > deadline:
                die(f"readiness probe {s['readiness']} still fails after {a.ready_timeout} s: {out}{err}")
            time.sleep(0.5)


def cmd_prestop(c, a):
    s = daemonset_spec(a)
    if not s["pre_stop"]:
        die("the manifest has no preStop hook")
    rc, out, err = exec_sync(c, a.container, s["pre_stop"], timeout=30)
    sys.stdout.write(out + err)
    sys.exit(rc)


def pod_args(a, name, namespace, annotations):
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{a.cgroup_parent}/{namespace}/{name}"))
    return dict(name=name, namespace=namespace, uid=uid, labels={"app": name}, annotations=annotations,
                cgroup_parent=f"{a.cgroup_parent}/pod{uid}", log_dir=os.path.join(a.log_dir, f"{namespace}_{name}_{uid}"))


def cmd_run_pod(c, a):
    cfg = sandbox_config(c, **pod_args(a, a.name, a.namespace, kv_list(a.annotation)))
    print(run_pod(c, cfg))


def cmd_container(c, a):
    st = c.call("PodSandboxStatus", c.pb.PodSandboxStatusRequest(pod_sandbox_id=a.pod)).status
    cfg = sandbox_config(c, **pod_args(a, st.metadata.name, st.metadata.namespace, dict(st.annotations)))
    print(start_container(c, a.pod, cfg, a.name, a.image, a.cmd, user=a.user))


def cmd_exec(c, a):
    rc, out, err = exec_sync(c, a.container, a.cmd, timeout=a.timeout)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(rc)


def mesh_pod(c, a, name, namespace, annotations):
    """A pod with a sidecar (UID 1500) and an app server, as the e2e cases use."""
    cfg = sandbox_config(c, **pod_args(a, name, namespace, annotations))
    pod_id = run_pod(c, cfg)
    side = start_container(c, pod_id, cfg, "sidecar", a.image,
                           ["/usr/bin/mwtest", "sidecar", "--listen", "127.0.0.1:15001",
                            "--inbound-listen", "0.0.0.0:15003"], user=1500)
    app = start_container(c, pod_id, cfg, "app", a.image,
                          ["/usr/bin/mwtest", "server", "--listen", "0.0.0.0:8080", "--name", name])
    st = pod_status(c, pod_id)
    return {"name": name, "pod": pod_id, "sidecar": side, "app": app, "ip": st["ip"], "pid": st["pid"]}


def cmd_mesh_pod(c, a):
    print(json.dumps(mesh_pod(c, a, a.name, a.namespace, kv_list(a.annotation))))


def cmd_pods(c, a):
    """Many pods at once, one thread each (kubelet runs pod workers in parallel)."""
    results, errors = {}, {}

    def one(i):
        name = f"{a.prefix}-{i}"
        try:
            if a.action == "create":
                results[name] = mesh_pod(c, a, name, a.namespace, kv_list(a.annotation))
            else:
                c.call("StopPodSandbox", c.pb.StopPodSandboxRequest(pod_sandbox_id=a.ids[i]))
                c.call("RemovePodSandbox", c.pb.RemovePodSandboxRequest(pod_sandbox_id=a.ids[i]))
                results[name] = a.ids[i]
        except CriError as e:
            errors[name] = str(e)

    a.ids = [i for i in a.ids.split(",") if i]
    n = a.count if a.action == "create" else len(a.ids)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in sorted(results):
        print(json.dumps(results[name]) if isinstance(results[name], dict) else results[name])
    for name, e in sorted(errors.items()):
        print(f"{name}: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", required=True, help="containerd's socket")
    ap.add_argument("--gen", required=True, help="directory of the generated gRPC code")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("gen")
    sub.add_parser("version")

    def pods_common(p):
        p.add_argument("--cgroup-parent", required=True)
        p.add_argument("--log-dir", required=True)

    for name in ("daemonset", "prestop"):
        p = sub.add_parser(name)
        p.add_argument("--manifest", action="append", required=True)
        p.add_argument("--remap", action="append", default=[], help="HOSTPATH=TEST_DIR")
        p.add_argument("--node-path", action="append", default=[], help="a hostPath that is the node's own")
        p.add_argument("--volume-dir", default="/nonexistent")
        p.add_argument("--node", default="node")
        p.add_argument("--pod", help="an existing sandbox (a restarted container)")
        p.add_argument("--pod-uid")
        p.add_argument("--attempt", type=int, default=0)
        p.add_argument("--ready-timeout", type=float, default=60)
        p.add_argument("--container")
        pods_common(p) if name == "daemonset" else (p.add_argument("--cgroup-parent"), p.add_argument("--log-dir"))
    p = sub.add_parser("run-pod")
    p.add_argument("--name", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--annotation", action="append", default=[])
    pods_common(p)
    for name in ("mesh-pod", "pods"):
        p = sub.add_parser(name)
        p.add_argument("--namespace", required=True)
        p.add_argument("--annotation", action="append", default=[])
        p.add_argument("--image", required=True)
        pods_common(p)
        if name == "mesh-pod":
            p.add_argument("--name", required=True)
        else:
            p.add_argument("action", choices=["create", "remove"])
            p.add_argument("--prefix", default="par")
            p.add_argument("--count", type=int, default=20)
            p.add_argument("--ids", default="", help="sandbox IDs to remove, comma-separated")
    p = sub.add_parser("container")
    p.add_argument("--pod", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--user", type=int)
    pods_common(p)
    p.add_argument("cmd", nargs="+")
    p = sub.add_parser("exec")
    p.add_argument("--container", required=True)
    p.add_argument("--timeout", type=int, default=30)
    p.add_argument("cmd", nargs="+")
    for name in ("status", "stop-pod", "remove-pod"):
        sub.add_parser(name).add_argument("pod")
    for name in ("cstatus", "remove-container"):
        sub.add_parser(name).add_argument("container")
    p = sub.add_parser("stop-container")
    p.add_argument("container")
    p.add_argument("--timeout", type=int, default=10)
    a = ap.parse_args()

    if a.command == "gen":
        generate(a.gen)
        return
    c = Cri(a.endpoint, a.gen)
    pb = c.pb
    try:
        simple = {
            "daemonset": cmd_daemonset, "prestop": cmd_prestop, "run-pod": cmd_run_pod, "mesh-pod": cmd_mesh_pod,
            "pods": cmd_pods, "container": cmd_container, "exec": cmd_exec,
            "version": lambda c, a: print(" ".join(
                getattr(c.call("Version", pb.VersionRequest(version="v1")), f)
                for f in ("runtime_name", "runtime_version", "runtime_api_version"))),
            "status": lambda c, a: print(json.dumps(pod_status(c, a.pod))),
            "cstatus": lambda c, a: print(json.dumps(container_status(c, a.container))),
            "stop-pod": lambda c, a: c.call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=a.pod)),
            "remove-pod": lambda c, a: c.call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=a.pod)),
            "stop-container": lambda c, a: c.call("StopContainer", pb.StopContainerRequest(
                container_id=a.container, timeout=a.timeout)),
            "remove-container": lambda c, a: c.call("RemoveContainer", pb.RemoveContainerRequest(
                container_id=a.container)),
        }
        simple[a.command](c, a)
    except CriError as e:
        die(str(e))


if __name__ == "__main__":
    main()
