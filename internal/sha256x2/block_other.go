//go:build !amd64 || purego

package sha256x2

var useSHANI = false

func block2(sa, sb *[8]uint32, pa, pb *byte, n int) {
	panic("sha256x2: no two-lane block function here")
}
