package gpu

import "fmt"

// DecodeHex decodes hex text such as NVIDIA's sample reports: every ASCII
// white-space byte (space, tab, CR, LF, VT, FF) anywhere in text is
// ignored, the rest must be an even number of hex digits (either case).
// Errors name the byte offset in text.
func DecodeHex(text []byte) ([]byte, error) {
	out := make([]byte, 0, len(text)/2)
	var hi byte
	half := false
	hiOff := 0
	for i, c := range text {
		var v byte
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			continue
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return nil, fmt.Errorf("gpu: hex text: invalid character %q at offset %d", c, i)
		}
		if !half {
			hi, hiOff, half = v, i, true
			continue
		}
		out = append(out, hi<<4|v)
		half = false
	}
	if half {
		return nil, fmt.Errorf("gpu: hex text: odd number of hex digits, the last one at offset %d has no partner", hiOff)
	}
	return out, nil
}
