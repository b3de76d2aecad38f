// Package procstat reads CPU time and memory of process trees from /proc (Linux only).
//
// A peer such as nginx is a master plus workers, so every figure is taken over a root PID and all of its
// descendants at the moment of reading. It must not start or signal processes.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ; 100 on every Linux architecture Go supports.
const clockTicks = 100

// Sample is CPU time and memory of one process tree at one instant.
type Sample struct {
	CPU   time.Duration // utime+stime of every live process in the tree
	RSS   int64         // bytes, VmRSS summed over the tree
	HWM   int64         // bytes, VmHWM (peak RSS) summed over the tree
	Procs int
}

// Tree samples root and its descendants.
func Tree(root int) (Sample, error) {
	pids := append([]int{root}, Descendants(root)...)
	var s Sample
	for i, pid := range pids {
		cpu, err := cpuTime(pid)
		if err != nil {
			if i == 0 {
				return s, err
			}
			continue // a child that exited between listing and reading
		}
		rss, hwm, err := memory(pid)
		if err != nil && i == 0 {
			return s, err
		}
		s.CPU += cpu
		s.RSS += rss
		s.HWM += hwm
		s.Procs++
	}
	return s, nil
}

// Descendants lists every process whose ancestry leads to root, by scanning /proc/*/stat.
func Descendants(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := statFields(pid)
		if err != nil {
			continue
		}
		ppid, _ := strconv.Atoi(f[1]) // field 4 overall
		parent[pid] = ppid
	}
	var out []int
	for pid := range parent {
		for p, hops := parent[pid], 0; p > 1 && hops < 64; p, hops = parent[p], hops+1 {
			if p == root {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// statFields returns the fields of /proc/pid/stat after the command name: index 0 is state (field 3).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f, nil
}

func cpuTime(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// utime is field 14 and stime field 15 overall; f[0] is field 3.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat times", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

func memory(pid int) (rss, hwm int64, err error) {
	fh, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			rss = kb(line)
		case strings.HasPrefix(line, "VmHWM:"):
			hwm = kb(line)
		}
	}
	return rss, hwm, sc.Err()
}

func kb(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	v, _ := strconv.ParseInt(f[1], 10, 64)
	return v * 1024
}

// Machine describes the host for the report header.
type Machine struct {
	CPUModel string `json:"cpu_model"`
	Cores    int    `json:"cores"`
	Kernel   string `json:"kernel"`
	MemTotal string `json:"mem_total"`
}

// ReadMachine reads /proc/cpuinfo, /proc/meminfo and the kernel release.
func ReadMachine() Machine {
	var m Machine
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = strings.TrimSpace(v)
				}
			case "processor":
				m.Cores++
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if _, v, ok := strings.Cut(line, ":"); ok {
			m.MemTotal = strings.TrimSpace(v)
		}
	}
	return m
}
