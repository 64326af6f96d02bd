"""tuning/check against fake hosts: a temp dir of /proc and /sys files passed as --root.

Run from the repository root: python3 -m unittest discover -s tuning/tests -v

Each test builds a host that matches tuning/profiles/ (`good_host`), changes what it is
about, runs tuning/check as a subprocess, and reads its --json rows. The data
directories a config names are real temp directories; their mounts and disk queues are
faked under the root with the temp dir's own device number.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "check")

GOOD = {
    "proc/sys/net/core/somaxconn": "4096",
    "proc/sys/net/ipv4/tcp_max_syn_backlog": "4096",
    "proc/sys/net/ipv4/tcp_slow_start_after_idle": "0",
    "proc/sys/net/ipv4/ip_local_port_range": "32768\t60999",
    "proc/sys/net/ipv4/ip_local_reserved_ports": "2181,2888,3888",
    "proc/sys/vm/swappiness": "1",
    "proc/sys/vm/overcommit_memory": "1",
    "proc/sys/vm/dirty_background_bytes": "67108864",
    "proc/sys/vm/dirty_background_ratio": "0",
    "proc/sys/vm/zone_reclaim_mode": "0",
    "proc/sys/fs/file-max": "2097152",
    "proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2  partition\t8388604\t0\t-2",
    "proc/meminfo": "MemTotal:       65536000 kB\nMemFree:        60000000 kB",
    "proc/cmdline": "BOOT_IMAGE=/vmlinuz ro isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7",
    "sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never",
    "sys/kernel/mm/transparent_hugepage/defrag": "always defer defer+madvise [madvise] never",
    "sys/devices/system/cpu/online": "0-7",
    "sys/devices/system/cpu/isolated": "2-7",
    "sys/devices/system/cpu/nohz_full": "2-7",
    # A running paddock started with CPUAffinity=2-7 and LimitNOFILE=1048576.
    "proc/4242/comm": "paddock",
    "proc/4242/status": "Name:\tpaddock\nCpus_allowed:\tfc\nCpus_allowed_list:\t2-7\n",
    "proc/4242/limits": "Limit                     Soft Limit           Hard Limit           Units\n"
                        "Max open files            1048576              1048576              files\n",
    "proc/1/comm": "systemd",
    # eth0's IRQs on the housekeeping cores.
    "sys/class/net/eth0/device/msi_irqs/40": "msix",
    "sys/class/net/eth0/device/msi_irqs/41": "msix",
    "proc/irq/40/smp_affinity_list": "0-1",
    "proc/irq/41/smp_affinity_list": "0-1",
    **{f"sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor": "performance" for c in range(8)},
}


def write(root, files):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text + "\n")


class CheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.root = os.path.join(self.tmp.name, "root")
        self.data = os.path.join(self.tmp.name, "data")
        os.makedirs(self.root)
        os.makedirs(self.data)

    def host(self, **changes):
        """The good host with some files replaced (`path__with__dunders=text`) or removed (None)."""
        files = dict(GOOD)
        for key, text in changes.items():
            rel = key.replace("__", "/")
            files.pop(rel, None) if text is None else files.__setitem__(rel, text)
        write(self.root, files)

    def config(self, text):
        path = os.path.join(self.tmp.name, "zoo.cfg")
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_check(self, *args, root=None):
        return subprocess.run([sys.executable, CHECK, "--root", root or self.root, *args],
                              capture_output=True, text=True, timeout=60)

    def rows(self, *args, root=None):
        p = self.run_check("--json", *args, root=root)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        return {row["name"]: row for row in json.loads(p.stdout)["rows"]}

    def status(self, name, *args, **changes):
        self.host(**changes)
        return self.rows(*args)[name]["status"]

    # --- the host ----------------------------------------------------------------------

    def test_host_as_profiled_is_all_ok_and_says_what_it_recommends(self):
        self.host()
        rows = self.rows()
        bad = {n: (r["status"], r["why"]) for n, r in rows.items() if r["status"] != "ok"}
        self.assertEqual(bad, {})
        self.assertEqual(rows["vm.swappiness"]["recommended"], "1")
        self.assertEqual(rows["vm.overcommit_memory"]["recommended"], "1")
        self.assertEqual(rows["net.core.somaxconn"]["recommended"], ">= 4096")
        self.assertEqual(rows["net.ipv4.tcp_slow_start_after_idle"]["recommended"], "0")
        self.assertIn("madvise", rows["transparent_hugepage.enabled"]["recommended"])
        self.assertIn("67108864", rows["vm.dirty_background_bytes"]["recommended"])
        self.assertEqual(rows["transparent_hugepage.enabled"]["set"], "madvise")
        self.assertIn("1048576/1048576 (paddock pid 4242)", rows["nofile (RLIMIT_NOFILE)"]["set"])
        self.assertIn("2-7 of 0-7 (paddock pid 4242)", rows["cpus for Paddock"]["set"])
        for r in rows.values():
            self.assertTrue(r["why"], r)

    def test_statuses_follow_the_values(self):
        cases = [  # (row, changed files, expected status)
            ("vm.swappiness", {"proc__sys__vm__swappiness": "60"}, "warn"),
            ("vm.swappiness", {"proc__sys__vm__swappiness": "60", "proc__swaps": "Filename\tType"}, "ok"),
            ("vm.overcommit_memory", {"proc__sys__vm__overcommit_memory": "0"}, "advise"),
            ("vm.overcommit_memory", {"proc__sys__vm__overcommit_memory": "2"}, "warn"),
            ("transparent_hugepage.enabled",
             {"sys__kernel__mm__transparent_hugepage__enabled": "[always] madvise never"}, "warn"),
            ("transparent_hugepage.enabled",
             {"sys__kernel__mm__transparent_hugepage__enabled": "always madvise [never]"}, "ok"),
            ("transparent_hugepage.defrag",
             {"sys__kernel__mm__transparent_hugepage__defrag": "[always] defer madvise never"}, "warn"),
            ("net.core.somaxconn", {"proc__sys__net__core__somaxconn": "128"}, "warn"),
            ("net.core.somaxconn", {"proc__sys__net__core__somaxconn": "2048"}, "advise"),
            ("net.ipv4.tcp_max_syn_backlog", {"proc__sys__net__ipv4__tcp_max_syn_backlog": "1024"}, "advise"),
            ("net.ipv4.tcp_slow_start_after_idle", {"proc__sys__net__ipv4__tcp_slow_start_after_idle": "1"}, "advise"),
            ("vm.zone_reclaim_mode", {"proc__sys__vm__zone_reclaim_mode": "1"}, "warn"),
            ("vm.dirty_background_bytes",  # 10% of 64 GB
             {"proc__sys__vm__dirty_background_bytes": "0", "proc__sys__vm__dirty_background_ratio": "10"}, "advise"),
            ("fs.file-max", {"proc__sys__fs__file-max": "400000"}, "advise"),
            ("net.ipv4.ip_local_port_range", {"proc__sys__net__ipv4__ip_local_reserved_ports": ""}, "ok"),
            ("net.ipv4.ip_local_port_range", {"proc__sys__net__ipv4__ip_local_port_range": "1024 65535",
                                              "proc__sys__net__ipv4__ip_local_reserved_ports": ""}, "advise"),
            ("nofile (RLIMIT_NOFILE)",
             {"proc__4242__limits": "Max open files            1024          4096          files"}, "warn"),
            ("NIC IRQ affinity", {"proc__irq__41__smp_affinity_list": "0-7"}, "advise"),
            ("cpufreq governor", {"sys__devices__system__cpu__cpu3__cpufreq__scaling_governor": "powersave"}, "advise"),
            ("nohz_full, rcu_nocbs", {"proc__cmdline": "isolcpus=2-7 nohz_full=2-7"}, "advise"),
            ("isolcpus", {"sys__devices__system__cpu__isolated": "", "proc__cmdline": "ro"}, "advise"),
        ]
        for name, changes, want in cases:
            with self.subTest(name=name, changes=changes):
                self.assertEqual(self.status(name, **changes), want)

    def test_isolcpus_is_read_from_the_cmdline_when_sysfs_lacks_it(self):
        self.host(sys__devices__system__cpu__isolated=None, proc__4242__comm="sshd")
        rows = self.rows()
        self.assertEqual(rows["isolcpus"]["set"], "2-7")
        # No paddock runs: a new process's mask leaves the isolated cores out.
        self.assertIn("0-1 of 0-7 (a new process's mask)", rows["cpus for Paddock"]["set"])

    def test_missing_files_are_unknown_not_a_crash(self):
        empty = os.path.join(self.tmp.name, "empty")
        os.makedirs(empty)
        cfg = self.config(f"dataDir={self.data}\n")
        rows = self.rows("--config", cfg, root=empty)
        for name in ("net.core.somaxconn", "vm.swappiness", "vm.overcommit_memory", "transparent_hugepage.enabled",
                     "vm.dirty_background_bytes", "dataDir filesystem", "dataDir disk"):
            self.assertEqual(rows[name]["status"], "unknown", name)
            self.assertEqual(rows[name]["set"], "?", name)
        # And in text form, on a root that does not even exist.
        p = self.run_check(root=os.path.join(self.tmp.name, "nowhere"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("unknown", p.stdout)
        self.assertEqual(p.stderr, "")

    def test_garbage_in_files_is_unknown(self):
        self.host(proc__sys__vm__swappiness="sixty", sys__kernel__mm__transparent_hugepage__enabled="",
                  proc__sys__net__ipv4__ip_local_port_range="oops")
        rows = self.rows()
        for name in ("vm.swappiness", "transparent_hugepage.enabled", "net.ipv4.ip_local_port_range"):
            self.assertEqual(rows[name]["status"], "unknown", name)

    # --- output and exit codes -----------------------------------------------------------

    def test_json_has_every_field_and_a_summary(self):
        self.host(proc__sys__vm__swappiness="60")
        p = self.run_check("--json", "--config", self.config(f"dataDir={self.data}\n"))
        out = json.loads(p.stdout)
        self.assertEqual(set(out), {"root", "config", "rows", "summary"})
        for row in out["rows"]:
            self.assertEqual(set(row), {"section", "name", "set", "recommended", "status", "why"})
            self.assertIn(row["status"], ("ok", "advise", "warn", "unknown"))
        self.assertEqual(sum(out["summary"].values()), len(out["rows"]))
        self.assertEqual(out["summary"]["warn"], sum(r["status"] == "warn" for r in out["rows"]))
        self.assertGreaterEqual(out["summary"]["warn"], 1)

    def test_text_table_has_one_line_per_setting(self):
        self.host()
        p = self.run_check()
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("name") and lines[0].rstrip().endswith("why"))
        swap = [l for l in lines if l.startswith("vm.swappiness")]
        self.assertEqual(len(swap), 1)
        self.assertEqual(swap[0].split()[:4], ["vm.swappiness", "1", "1", "ok"])
        self.assertRegex(lines[-1], r"^\d+ ok, \d+ advise, 0 warn, \d+ unknown")

    def test_strict_exits_1_on_a_warning_only(self):
        self.host()
        self.assertEqual(self.run_check("--strict").returncode, 0)
        self.host(proc__sys__vm__overcommit_memory="2")
        self.assertEqual(self.run_check().returncode, 0)
        self.assertEqual(self.run_check("--strict").returncode, 1)
        self.assertEqual(self.run_check("--strict", "--json").returncode, 1)

    def test_a_bad_config_exits_2_naming_key_and_value(self):
        self.host()
        cases = [
            ("tickTime=abc\ndataDir=/x\n", "tickTime=abc: not a valid number"),
            ("tickTime=2000\n", "dataDir is required"),
            ("dataDir=/x\npaddock.reactorThreads=0\n", "paddock.reactorThreads=0: must be 1..=256"),
            ("dataDir=/x\npaddock.outboundBytesMax=1000\n", "paddock.outboundBytesMax=1000: must be >= 65536"),
            ("dataDir=/x\nforceSync=maybe\n", "forceSync=maybe: expected true/false or yes/no"),
            ("dataDir=/x\nclientPort=70000\n", "clientPort=70000: not a valid number"),
            ("dataDir=/x\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n",
             "minSessionTimeout=5000: must not be larger than maxSessionTimeout (4000)"),
            ("dataDir=/x\njustakey\n", 'line 2: cannot parse "justakey"'),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                p = self.run_check("--config", self.config(text))
                self.assertEqual(p.returncode, 2)
                self.assertIn(message, p.stderr)
                self.assertEqual(p.stdout, "")
        p = self.run_check("--config", os.path.join(self.tmp.name, "no-such.cfg"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("no-such.cfg: No such file or directory", p.stderr)

    def test_config_syntax_as_paddock_reads_it(self):
        self.host()
        cfg = self.config(f"# comment\n! also a comment\nzookeeper.dataDir: {self.data}\n"
                          "paddock.syncDelayUs 250\nsomethingElse=1\n")
        rows = self.rows("--config", cfg)
        self.assertEqual(rows["paddock.syncDelayUs"]["set"], "250")

    # --- Paddock's settings ------------------------------------------------------------

    def test_paddock_settings(self):
        d = f"dataDir={self.data}\n"
        cases = [  # (row, config, expected status)
            ("paddock.syncDelayUs", d, "ok"),
            ("paddock.syncDelayUs", d + "paddock.syncDelayUs=500\n", "warn"),
            ("forceSync", d, "ok"),
            ("forceSync", d + "forceSync=no\n", "warn"),
            ("dataLogDir", d, "advise"),
            ("dataLogDir", d + f"dataLogDir={self.data}/log\n", "advise"),
            ("autopurge.purgeInterval", d, "advise"),
            ("autopurge.purgeInterval", d + "autopurge.purgeInterval=1\n", "ok"),
            ("paddock.batchTxnsMax", d + "paddock.batchTxnsMax=10\n", "advise"),
            ("paddock.outstandingPerConnection", d + "paddock.outstandingPerConnection=5000\n", "advise"),
            ("paddock.outboundBytesMax", d + "paddock.outboundBytesMax=65536\n", "advise"),
            # The running paddock's mask is 2-7: 6 cores, writer on 2, reactors on 3-7.
            ("paddock.reactorThreads", d, "ok"),
            ("paddock.reactorThreads", d + "paddock.reactorThreads=5\n", "ok"),
            ("paddock.reactorThreads", d + "paddock.reactorThreads=8\n", "warn"),
            ("paddock.reactorThreads", d + "paddock.reactorThreads=8\npaddock.pinCores=false\n", "advise"),
            ("paddock.reactorThreads", d + "paddock.reactorThreads=2\n", "advise"),
            ("paddock.pinCores", d, "ok"),
            ("paddock.pinCores", d + "paddock.pinCores=false\n", "advise"),
        ]
        self.host()
        for name, text, want in cases:
            with self.subTest(name=name, config=text):
                self.assertEqual(self.rows("--config", self.config(text))[name]["status"], want)

    def test_reactor_cores_come_from_the_mask(self):
        self.host()
        rows = self.rows("--config", self.config(f"dataDir={self.data}\npaddock.reactorThreads=8\n"))
        self.assertIn("8 reactors + 1 writer on 6 cores", rows["paddock.reactorThreads"]["why"])
        self.assertEqual(rows["paddock.reactorThreads"]["recommended"].split()[0], "5")

    def test_pinning_outside_the_isolated_cores_warns(self):
        # No paddock runs: it would start with the housekeeping mask 0-1 and pin there.
        self.host(proc__4242__comm="sshd")
        rows = self.rows("--config", self.config(f"dataDir={self.data}\n"))
        self.assertEqual(rows["paddock.pinCores"]["status"], "warn")
        self.assertIn("CPUAffinity=2-7", rows["paddock.pinCores"]["why"])
        # A paddock whose mask covers housekeeping and isolated cores: reactors on 0-1 too.
        self.host(proc__4242__status="Cpus_allowed_list:\t0-7")
        rows = self.rows("--config", self.config(f"dataDir={self.data}\n"))
        self.assertEqual(rows["paddock.pinCores"]["status"], "advise")

    def test_ports_from_the_config(self):
        self.host(proc__sys__net__ipv4__ip_local_port_range="1024 65535",
                  proc__sys__net__ipv4__ip_local_reserved_ports="2181")
        ok = self.rows("--config", self.config(f"dataDir={self.data}\nclientPort=2181\n"))
        self.assertEqual(ok["net.ipv4.ip_local_port_range"]["status"], "ok")
        ens = self.rows("--config", self.config(
            f"dataDir={self.data}\nserver.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888;2181\n"))
        row = ens["net.ipv4.ip_local_port_range"]
        self.assertEqual(row["status"], "warn")
        self.assertIn("2888,3888", row["why"])

    # --- storage -----------------------------------------------------------------------

    def fake_disk(self, path, fs="ext4", opts="rw,noatime", sched="[none] mq-deadline", rot="0",
                  partition=False):
        """/proc/mounts with `path` as a mount point, and the disk queue of its device."""
        dev = os.stat(path).st_dev
        if os.major(dev) == 0:
            self.skipTest("the temp dir is on a filesystem without a block device")
        files = {"proc/mounts": f"/dev/fake1 / ext4 rw,relatime 0 0\n/dev/fake2 {path} {fs} {opts} 0 0"}
        disk = "sys/devices/fake/block/sdz"
        link = f"{disk}/sdz1" if partition else disk
        files.update({f"{disk}/queue/scheduler": sched, f"{disk}/queue/rotational": rot,
                      f"{disk}/queue/write_cache": "write back"})
        write(self.root, files)
        os.makedirs(os.path.join(self.root, link), exist_ok=True)
        os.makedirs(os.path.join(self.root, "sys/dev/block"), exist_ok=True)
        os.symlink(os.path.join("..", "..", os.path.relpath(link, "sys")),
                   os.path.join(self.root, f"sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))

    def test_data_directory_filesystem_and_disk(self):
        self.host()
        cfg = self.config(f"dataDir={self.data}\n")
        cases = [  # (fake_disk arguments, row, expected status, text in `set`)
            ({}, "dataDir filesystem", "ok", "ext4 rw,noatime"),
            ({"opts": "rw,relatime"}, "dataDir filesystem", "ok", "relatime"),
            ({"opts": "rw,nobarrier"}, "dataDir filesystem", "warn", "nobarrier"),
            ({"opts": "rw,noatime,discard"}, "dataDir filesystem", "advise", "discard"),
            ({"opts": "ro,noatime"}, "dataDir filesystem", "warn", "ro"),
            ({"fs": "tmpfs"}, "dataDir filesystem", "warn", "tmpfs"),
            ({"fs": "nfs4"}, "dataDir filesystem", "warn", "nfs4"),
            ({"fs": "btrfs"}, "dataDir filesystem", "advise", "btrfs"),
            ({}, "dataDir disk", "ok", "sdz: none, SSD, write back cache"),
            ({"sched": "mq-deadline [bfq] none"}, "dataDir disk", "advise", "bfq"),
            ({"rot": "1", "sched": "[mq-deadline] none"}, "dataDir disk", "advise", "rotational"),
            ({"partition": True}, "dataDir disk", "ok", "sdz: none"),
        ]
        for kwargs, name, want, text in cases:
            with self.subTest(kwargs=kwargs, row=name):
                for sub in ("sys/dev", "sys/devices/fake"):
                    shutil.rmtree(os.path.join(self.root, sub), ignore_errors=True)
                self.fake_disk(self.data, **kwargs)
                row = self.rows("--config", cfg)[name]
                self.assertEqual(row["status"], want, row)
                self.assertIn(text, row["set"])

    def test_a_missing_data_directory_is_judged_where_it_would_be_created(self):
        self.host()
        self.fake_disk(self.data)
        rows = self.rows("--config", self.config(f"dataDir={self.data}/not/yet\n"))
        self.assertEqual(rows["dataDir filesystem"]["status"], "ok")
        self.assertIn(f"missing; {self.data}", rows["dataDir filesystem"]["why"])

    def test_data_log_dir_on_another_device(self):
        other = "/dev/shm" if os.path.isdir("/dev/shm") else "/proc"
        if os.stat(other).st_dev == os.stat(self.data).st_dev:
            self.skipTest(f"{other} and the temp dir share a device")
        self.host(proc__mounts=f"/dev/x / ext4 rw,relatime 0 0\ntmpfs {other} tmpfs rw 0 0")
        rows = self.rows("--config", self.config(f"dataDir={self.data}\ndataLogDir={other}/paddock-test-log\n"))
        self.assertEqual(rows["dataLogDir"]["status"], "ok")
        self.assertEqual(rows["dataLogDir filesystem"]["status"], "warn")  # tmpfs: gone at reboot
        self.assertEqual(rows["dataLogDir disk"]["status"], "unknown")  # no block device behind it

    # --- this machine ------------------------------------------------------------------

    def test_runs_on_this_host(self):
        cfg = self.config(f"dataDir={self.data}\ndataLogDir={self.data}/log\nautopurge.purgeInterval=1\n")
        for args in ([], ["--config", cfg], ["--json", "--config", cfg]):
            with self.subTest(args=args):
                p = subprocess.run([sys.executable, CHECK, *args], capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, "")

    def test_the_profile_config_is_valid(self):
        cfg = os.path.join(os.path.dirname(CHECK), "profiles", "paddock-dedicated.cfg")
        self.host()
        rows = self.rows("--config", cfg)
        self.assertEqual(rows["paddock.syncDelayUs"]["status"], "ok")
        self.assertEqual(rows["forceSync"]["status"], "ok")
        self.assertEqual(rows["autopurge.purgeInterval"]["status"], "ok")
        self.assertEqual(rows["paddock.reactorThreads"]["set"], "13")


    def test_the_checker_knows_only_keys_paddock_parses(self):
        """The checker repeats Paddock's config rules: every key it checks must still be a
        key src/config/mod.rs matches on, and every paddock.* key there must be checked."""
        import importlib.machinery
        import importlib.util
        import re

        loader = importlib.machinery.SourceFileLoader("tuning_check", CHECK)
        spec = importlib.util.spec_from_loader("tuning_check", loader)
        check = importlib.util.module_from_spec(spec)
        loader.exec_module(check)
        root = os.path.join(os.path.dirname(CHECK), "..")
        with open(os.path.join(root, "src", "config", "mod.rs")) as f:
            rust = f.read()
        parsed = set(re.findall(r'"([A-Za-z0-9_.]+)"\s*(?:\|\s*"[A-Za-z0-9_.]+"\s*)*=>', rust))
        parsed |= set(re.findall(r'\|\s*"([A-Za-z0-9_.]+)"', rust))
        for key in list(check.NUMBERS) + list(check.BOOLEANS) + list(check.PATHS):
            self.assertIn(key, parsed, f"tuning/check checks {key}, which Paddock does not parse")
        for key in sorted(k for k in parsed if k.startswith("paddock.")):
            self.assertIn(key, set(check.NUMBERS) | set(check.BOOLEANS) | set(check.PATHS),
                          f"Paddock parses {key}; tuning/check does not check it")


if __name__ == "__main__":
    unittest.main()
