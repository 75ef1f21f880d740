package gateway

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"tollgate"
)

// acceptedAudio names the formats whose duration the gateway measures
// before a transcription is held: the only ones it accepts.
const acceptedAudio = "wav, mp3, flac"

// minByteRate is the least bytes per second a WAV file may claim: below
// every real encoding (GSM 6.10 at 8 kHz is 1,625), so that a header
// lying about its rate cannot make a small file hours long.
const minByteRate = 1000

// audioDuration measures an audio file from its bytes, without decoding
// its samples: WAV from its RIFF header (data size / byte rate), MP3 from
// its frame headers (a Xing/Info or VBRI header's frame count, else every
// frame counted), FLAC from its STREAMINFO block (total samples / sample
// rate). An ID3v2 tag before any of them is skipped. Other formats, files
// that are not audio and files whose duration cannot be read are
// EINVALID, their message fit for the caller; nothing else is returned.
func audioDuration(b []byte) (format string, d time.Duration, err error) {
	b = skipID3(b)
	switch {
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		d, err = wavDuration(b)
		return "wav", d, err
	case len(b) >= 4 && string(b[:4]) == "fLaC":
		d, err = flacDuration(b)
		return "flac", d, err
	case len(b) >= 4 && string(b[:4]) == "OggS":
		return "", 0, refusedAudio("ogg (opus, vorbis)")
	case len(b) >= 4 && bytes.Equal(b[:4], []byte{0x1a, 0x45, 0xdf, 0xa3}):
		return "", 0, refusedAudio("webm")
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		return "", 0, refusedAudio("mp4 / m4a")
	case hasMP3Sync(b):
		d, err = mp3Duration(b)
		return "mp3", d, err
	}
	return "", 0, tollgate.Errorf(tollgate.EINVALID, "file is not audio in a format this gateway accepts (%s)", acceptedAudio)
}

// refusedAudio is the error for an audio format the gateway cannot measure.
func refusedAudio(format string) error {
	return tollgate.Errorf(tollgate.EINVALID,
		"file is %s audio, whose duration this gateway cannot measure before the call; send %s", format, acceptedAudio)
}

// unreadable is the error for an audio file whose duration cannot be read.
func unreadable(format, why string) error {
	return tollgate.Errorf(tollgate.EINVALID, "the duration of this %s file cannot be read: %s", format, why)
}

// skipID3 returns b after an ID3v2 tag at its start, if any.
func skipID3(b []byte) []byte {
	if len(b) < 10 || string(b[:3]) != "ID3" {
		return b
	}
	n := 0
	for _, c := range b[6:10] {
		if c&0x80 != 0 {
			return b // not a syncsafe size: not a tag
		}
		n = n<<7 | int(c)
	}
	n += 10
	if b[5]&0x10 != 0 { // footer present
		n += 10
	}
	if n > len(b) {
		return nil
	}
	return b[n:]
}

// wavDuration reads a RIFF/WAVE file's fmt and data chunks. A data size
// beyond the file (a header written before the recording ended) counts
// only the bytes present.
func wavDuration(b []byte) (time.Duration, error) {
	var byteRate uint32
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int64(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || int64(body)+16 > int64(len(b)) {
				return 0, unreadable("wav", "its fmt chunk is cut short")
			}
			byteRate = binary.LittleEndian.Uint32(b[body+8 : body+12])
			if byteRate < minByteRate {
				return 0, unreadable("wav", fmt.Sprintf("its byte rate %d is not a real audio rate", byteRate))
			}
		case "data":
			if byteRate == 0 {
				return 0, unreadable("wav", "its data chunk comes before its fmt chunk")
			}
			size = min(size, int64(len(b)-body))
			if size <= 0 {
				return 0, unreadable("wav", "it holds no audio data")
			}
			return time.Duration(size * int64(time.Second) / int64(byteRate)), nil
		}
		next := int64(body) + size + size&1 // chunks are padded to an even size
		if next > int64(len(b)) {
			break
		}
		off = int(next)
	}
	return 0, unreadable("wav", "it has no data chunk")
}

// flacDuration reads a FLAC file's STREAMINFO block, always the first.
func flacDuration(b []byte) (time.Duration, error) {
	if len(b) < 8+34 || b[4]&0x7f != 0 {
		return 0, unreadable("flac", "it does not start with a STREAMINFO block")
	}
	si := b[8 : 8+34]
	rate := uint64(si[10])<<12 | uint64(si[11])<<4 | uint64(si[12])>>4
	total := uint64(si[13]&0x0f)<<32 | uint64(binary.BigEndian.Uint32(si[14:18]))
	switch {
	case rate == 0:
		return 0, unreadable("flac", "its sample rate is 0")
	case total == 0:
		return 0, unreadable("flac", "its total sample count is not recorded")
	}
	return samples(total, rate), nil
}

// samples is the duration of n samples at rate per second.
func samples(n, rate uint64) time.Duration {
	return time.Duration(n/rate)*time.Second + time.Duration((n%rate)*uint64(time.Second)/rate)
}

// mp3Frame is one MPEG audio frame header, read.
type mp3Frame struct {
	size, samples, rate int
	mpeg1, mono         bool
}

var (
	mp3Bitrates = [2][3][16]int{ // [mpeg1?0:1][layer-1][index], kbit/s; 0 free, -1 bad
		{
			{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, -1},
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, -1},
			{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1},
		},
		{
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, -1},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
		},
	}
	mp3Rates = [4][3]int{{11025, 12000, 8000}, {0, 0, 0}, {22050, 24000, 16000}, {44100, 48000, 32000}} // [version bits][index]
)

// parseMP3Frame reads the frame header at b's start; ok is false when it
// is not one (free-format bitrates included: their frames have no size).
func parseMP3Frame(b []byte) (f mp3Frame, ok bool) {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return f, false
	}
	version, layerBits := int(b[1]>>3&3), int(b[1]>>1&3)
	bi, ri, pad := int(b[2]>>4), int(b[2]>>2&3), int(b[2]>>1&1)
	if version == 1 || layerBits == 0 || ri == 3 {
		return f, false
	}
	layer := 4 - layerBits
	f.mpeg1 = version == 3
	row := 1
	if f.mpeg1 {
		row = 0
	}
	kbps := mp3Bitrates[row][layer-1][bi]
	f.rate = mp3Rates[version][ri]
	if kbps <= 0 || f.rate == 0 {
		return f, false
	}
	bps := kbps * 1000
	switch {
	case layer == 1:
		f.samples, f.size = 384, (12*bps/f.rate+pad)*4
	case layer == 3 && !f.mpeg1:
		f.samples, f.size = 576, 72*bps/f.rate+pad
	default:
		f.samples, f.size = 1152, 144*bps/f.rate+pad
	}
	f.mono = b[3]>>6 == 3
	return f, f.size >= 4
}

// hasMP3Sync reports whether b starts, within its first 64 KiB, with two
// chained MPEG audio frames.
func hasMP3Sync(b []byte) bool { return mp3Start(b) >= 0 }

// mp3Start is the offset of the first of two chained frames within the
// first 64 KiB of b (leading padding is common after a tag), or -1.
func mp3Start(b []byte) int {
	for i := 0; i < min(len(b), 64<<10); i++ {
		if b[i] != 0xff {
			continue
		}
		f, ok := parseMP3Frame(b[i:])
		if !ok {
			continue
		}
		switch next := i + f.size; {
		case next == len(b):
			return i // a file of one frame
		case next > len(b):
			continue
		}
		if g, ok := parseMP3Frame(b[i+f.size:]); ok && g.rate == f.rate {
			return i
		}
	}
	return -1
}

// mp3Duration counts an MPEG audio stream: a Xing/Info or VBRI header in
// its first frame gives the frame count; else every frame is walked. The
// stream may end in an ID3v1, APE or Lyrics3 tag; any other break in it
// makes its duration unreadable (the audio after it would go unbilled).
func mp3Duration(b []byte) (time.Duration, error) {
	start := mp3Start(b)
	if start < 0 {
		return 0, unreadable("mp3", "no MPEG audio frames were found")
	}
	first, _ := parseMP3Frame(b[start:])
	if n, ok := vbrFrames(b[start:], first); ok {
		if n == 0 {
			return 0, unreadable("mp3", "its VBR header counts no frames")
		}
		return samples(uint64(n)*uint64(first.samples), uint64(first.rate)), nil
	}
	var total uint64
	off := start
	for off < len(b) {
		f, ok := parseMP3Frame(b[off:])
		if !ok || f.rate != first.rate {
			if tail(b[off:]) {
				break
			}
			return 0, unreadable("mp3", fmt.Sprintf("its frames break off at byte %d", off))
		}
		if off+f.size > len(b) {
			break // the last frame cut short: not counted
		}
		total += uint64(f.samples)
		off += f.size
	}
	if total == 0 {
		return 0, unreadable("mp3", "it holds no whole frame")
	}
	return samples(total, uint64(first.rate)), nil
}

// tail reports whether b is what may follow an MPEG stream: tags, or a
// few stray bytes.
func tail(b []byte) bool {
	for _, tag := range []string{"TAG", "APETAGEX", "LYRICSBEGIN", "ID3"} {
		if bytes.HasPrefix(b, []byte(tag)) {
			return true
		}
	}
	return len(b) < 128
}

// vbrFrames reads the frame count of a Xing/Info or VBRI header in the
// frame f at b's start.
func vbrFrames(b []byte, f mp3Frame) (uint32, bool) {
	side := 17 // side information before the Xing header
	switch {
	case f.mpeg1 && !f.mono:
		side = 32
	case !f.mpeg1 && f.mono:
		side = 9
	}
	if x := b[min(len(b), 4+side):]; len(x) >= 12 && (string(x[:4]) == "Xing" || string(x[:4]) == "Info") {
		if binary.BigEndian.Uint32(x[4:8])&1 == 0 {
			return 0, false // no frame count: walk the frames
		}
		return binary.BigEndian.Uint32(x[8:12]), true
	}
	if v := b[min(len(b), 36):]; len(v) >= 18 && string(v[:4]) == "VBRI" {
		return binary.BigEndian.Uint32(v[14:18]), true
	}
	return 0, false
}
