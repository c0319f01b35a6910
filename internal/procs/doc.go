// Package procs sizes GOMAXPROCS to the process's load: one processor while
// the process is mostly idle, the runtime's default as soon as it is busy.
//
// A proxy or agent spends most of its life waiting: heartbeats, a scrape
// every few seconds. Each message wakes a goroutine on the other
// processor, and with more than one processor the Go scheduler wakes a
// sleeping thread to run it and puts a thread back to sleep after; on a
// virtual machine that costs more than the message itself. One processor
// runs the same hand-offs without a thread switch. Under load the process
// needs every processor it may use, so the controller gives them back
// within one sampling interval of the load rising (250 ms; 1 s when the
// process was all but asleep), and takes them away only after the load has
// stayed low for a while.
//
// It is for the commands, which own their process. Library users of the
// server and client packages keep their runtime settings.
package procs
