package main

import (
	"context"
	"sync"

	"github.com/certsrv/certsrv/certadm"
)

// handleKind tells backup handles from restore handles.
type handleKind int

const (
	kindBackup handleKind = iota + 1
	kindRestore
)

// openFile is the file a backup handle has open.
type openFile struct {
	f      *certadm.BackupFile
	cancel context.CancelFunc // ends the file's context, and so its stream
}

// entry is what a handle names. mu serializes the calls on the handle and
// guards every field below it.
type entry struct {
	kind handleKind

	mu      sync.Mutex
	backup  *certadm.BackupContext // kindBackup
	file    *openFile              // kindBackup; nil when no file is open
	restore *restoreSession        // kindRestore
}

// handleTable maps handle numbers to entries. The zero value is not usable;
// use newHandleTable.
type handleTable struct {
	mu      sync.Mutex
	next    uintptr
	entries map[uintptr]*entry
}

func newHandleTable() *handleTable {
	return &handleTable{next: 1, entries: map[uintptr]*entry{}}
}

// handles is the process's table. It is the only package-level state.
var handles = newHandleTable()

// add stores e and returns its handle number, never 0.
func (t *handleTable) add(e *entry) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.next
	t.next++
	t.entries[h] = e
	return h
}

// get returns the entry of handle h if it exists and is of kind k.
func (t *handleTable) get(h uintptr, k handleKind) (*entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[h]
	if !ok || e.kind != k {
		return nil, false
	}
	return e, true
}

// remove deletes handle h and returns its entry if it exists and is of kind
// k; a handle of the other kind stays.
func (t *handleTable) remove(h uintptr, k handleKind) (*entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[h]
	if !ok || e.kind != k {
		return nil, false
	}
	delete(t.entries, h)
	return e, true
}

// len returns the number of live handles.
func (t *handleTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}
