#!/usr/bin/env bash
# CPU isolation and NIC IRQ affinity for Paddock's reactor cores.
#
#   tuning/profiles/cpu-isolation.sh HOUSEKEEPING_CPUS [IFACE...]           # dry run
#   tuning/profiles/cpu-isolation.sh --apply HOUSEKEEPING_CPUS [IFACE...]   # as root
#
# Moves the IRQs of the NICs (all with a device, or the ones named) to HOUSEKEEPING_CPUS,
# e.g. 0-1, so they stop preempting Paddock's threads. One-off: a driver reload or link
# reset reassigns them, and irqbalance moves them back unless told (see 3). The
# comments below say how to make the whole layout stick. tuning/check reports the result
# (cpus for Paddock, isolcpus, nohz_full, NIC IRQ affinity, paddock.pinCores).
#
# How Paddock places its threads (src/server/start.rs): with paddock.pinCores=true it
# takes the CPUs of its own affinity mask in ascending order, pins the writer to the
# first and reactor i to the (i+1)-th, wrapping round if there are more threads than
# cores. paddock.reactorThreads defaults to the mask's size - 1, so writer + reactors
# fill the mask exactly. Unpinned threads (quorum links, election, purge) run anywhere
# in the mask. The snapshot child is forked by the writer and inherits its one-core
# affinity, so while it runs (about 1.4 s per 1M znodes) it shares the writer's core.
#
# Example: 16 cores, no SMT. Cores 0-1 keep the kernel, IRQs, sshd and agents; 2-15 are
# Paddock's: the writer on 2, 13 reactors on 3-15 (paddock-dedicated.cfg).
#
# 1. Kernel command line (/etc/default/grub, GRUB_CMDLINE_LINUX, then update-grub):
#
#      isolcpus=managed_irq,domain,2-15 nohz_full=2-15 rcu_nocbs=2-15 irqaffinity=0-1
#
#    isolcpus=domain  takes 2-15 out of the scheduler's load balancing: nothing runs
#                     there unless pinned there. New processes start with a mask of 0-1.
#    managed_irq      keeps kernel-managed IRQs (NVMe queues, some NICs) off 2-15 where
#                     the device allows it (Linux 5.6+).
#    nohz_full        stops the scheduler tick on a core running one thread: a busy
#                     reactor is no longer interrupted 100-1000 times a second (needs
#                     CONFIG_NO_HZ_FULL; most distribution kernels have it).
#    rcu_nocbs        runs RCU callbacks of 2-15 on housekeeping cores instead.
#    irqaffinity      the default affinity of IRQs as they are set up: 0-1.
#    A cgroup v2 cpuset partition (cpuset.cpus.partition=isolated) does the same as
#    isolcpus=domain at run time, without a reboot, on recent kernels.
#
# 2. Start Paddock on the isolated cores, or it pins inside 0-1 and 2-15 stay idle:
#    CPUAffinity=2-15 in its unit (paddock.service), or `taskset -c 2-15 paddock ...`.
#
# 3. irqbalance already leaves isolated and nohz_full cores alone when
#    IRQBALANCE_BANNED_CPULIST is unset. Without isolcpus, set it to Paddock's cores in
#    /etc/default/irqbalance (Debian) or /etc/sysconfig/irqbalance (RHEL):
#      IRQBALANCE_BANNED_CPULIST=2-15
#    or stop irqbalance and run this script at boot.
#
# 4. SMT: two hyperthreads share one core's execution units and caches. Isolate both
#    siblings of a core (/sys/devices/system/cpu/cpuN/topology/thread_siblings_list) and
#    give Paddock one of them, or turn SMT off; a reactor whose sibling runs something
#    else is only half a core.
#
# 5. NUMA: keep Paddock's cores, its memory and the NIC on one node
#    (/sys/class/net/IFACE/device/numa_node, lscpu). A reactor on the far node reaches
#    the NIC's buffers and the tree across the interconnect.
#
# 6. Frequency: the performance governor (cpupower frequency-set -g performance) keeps
#    the cores at speed; a reactor woken on a slow clock answers late. VMs usually have
#    no cpufreq: the hypervisor decides.

set -euo pipefail
apply=0
if [ "${1-}" = --apply ]; then apply=1; shift; fi
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; then
  echo "usage: $0 [--apply] HOUSEKEEPING_CPUS [IFACE...]   (HOUSEKEEPING_CPUS like 0-1 or 0,8)" >&2
  exit 2
fi
cpus=$1; shift
ifaces=("$@")
if [ ${#ifaces[@]} -eq 0 ]; then
  for d in /sys/class/net/*/device; do
    [ -e "$d" ] && ifaces+=("$(basename "$(dirname "$d")")")
  done
fi
[ ${#ifaces[@]} -gt 0 ] || { echo "no NIC with a device found (a container?)"; exit 0; }
for ifc in "${ifaces[@]}"; do
  dir=/sys/class/net/$ifc/device/msi_irqs
  [ -d "$dir" ] || dir=/sys/class/net/$ifc/device/../msi_irqs # virtio-net: on the PCI parent
  if ! [ -d "$dir" ]; then echo "$ifc: no MSI IRQs found; skipped"; continue; fi
  for irq in $(ls "$dir" | sort -n); do
    f=/proc/irq/$irq/smp_affinity_list
    [ -r "$f" ] || continue
    now=$(cat "$f")
    if [ $apply = 0 ]; then
      echo "$ifc irq $irq: $now -> $cpus (dry run; --apply writes it)"
    elif echo "$cpus" 2>/dev/null > "$f"; then
      echo "$ifc irq $irq: $now -> $cpus"
    else
      echo "$ifc irq $irq: $now, unchanged (kernel-managed or not movable)"
    fi
  done
done
