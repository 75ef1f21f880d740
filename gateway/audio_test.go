package gateway

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"tollgate"
)

// testWAV is a WAV file of 16-bit mono PCM at rate lasting samples.
func testWAV(rate, samples int) []byte {
	b := make([]byte, 44+2*samples)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*samples))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*samples))
	return b
}

// testMP3 is frames MPEG-1 Layer III frames at 128 kbit/s, 44.1 kHz
// (417 bytes, 1,152 samples each), silent; with xing, the first is a
// Xing header counting them.
func testMP3(frames int, mono, xing bool) []byte {
	const size = 417
	b := make([]byte, 0, (frames+1)*size)
	frame := func() []byte {
		f := make([]byte, size)
		f[0], f[1], f[2] = 0xff, 0xfb, 0x90
		if mono {
			f[3] = 0xc0
		}
		return f
	}
	if xing {
		f := frame()
		off := 4 + 32
		if mono {
			off = 4 + 17
		}
		copy(f[off:], "Xing")
		binary.BigEndian.PutUint32(f[off+4:], 1)
		binary.BigEndian.PutUint32(f[off+8:], uint32(frames))
		b = append(b, f...)
	}
	for range frames {
		b = append(b, frame()...)
	}
	return b
}

// testFLAC is a FLAC file's start: its STREAMINFO of total samples at rate.
func testFLAC(rate int, total uint64) []byte {
	b := append([]byte("fLaC"), 0x80, 0, 0, 34)
	si := make([]byte, 34)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate&0xf)<<4 | 1<<1 // stereo
	si[13] = 15<<4 | byte(total>>32)  // 16 bits
	binary.BigEndian.PutUint32(si[14:], uint32(total))
	return append(b, si...)
}

// id3 is an ID3v2 tag of n bytes of body.
func id3(n int) []byte {
	return append([]byte{'I', 'D', '3', 4, 0, 0, byte(n >> 21 & 0x7f), byte(n >> 14 & 0x7f), byte(n >> 7 & 0x7f), byte(n & 0x7f)}, make([]byte, n)...)
}

func TestAudioDuration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   []byte
		format string
		want   time.Duration
	}{
		{"WAV", testWAV(8000, 20000), "wav", 2500 * time.Millisecond},
		{"WAVHeaderClaimsMore", func() []byte { b := testWAV(16000, 16000); binary.LittleEndian.PutUint32(b[40:], 1<<31); return b }(), "wav", time.Second},
		{"WAVExtraChunk", func() []byte {
			b := testWAV(8000, 8000)
			return append(append(append([]byte{}, b[:36]...), "LIST\x03\x00\x00\x00abc\x00"...), b[36:]...)
		}(), "wav", time.Second},
		{"MP3Walked", testMP3(100, false, false), "mp3", samples(100*1152, 44100)},
		{"MP3Mono", testMP3(50, true, false), "mp3", samples(50*1152, 44100)},
		{"MP3Xing", testMP3(1000, false, true)[:417*3], "mp3", samples(1000*1152, 44100)},
		{"MP3XingMono", testMP3(7, true, true), "mp3", samples(7*1152, 44100)},
		{"MP3AfterID3", append(id3(300), testMP3(10, false, false)...), "mp3", samples(10*1152, 44100)},
		{"MP3WithID3v1", append(testMP3(10, false, false), append([]byte("TAG"), make([]byte, 125)...)...), "mp3", samples(10*1152, 44100)},
		{"MP3LastFrameCut", testMP3(10, false, false)[:417*10-5], "mp3", samples(9*1152, 44100)},
		{"FLAC", testFLAC(44100, 88200), "flac", 2 * time.Second},
		{"FLACAfterID3", append(id3(20), testFLAC(48000, 72000)...), "flac", 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			format, d, err := audioDuration(tc.file)
			if err != nil || format != tc.format || d != tc.want {
				t.Errorf("= %s, %v, %v; want %s, %v", format, d, err, tc.format, tc.want)
			}
		})
	}
}

func TestAudioDurationRefused(t *testing.T) {
	brokenMP3 := testMP3(20, false, false)
	copy(brokenMP3[417*10:], strings.Repeat("junk", 200))
	for _, tc := range []struct {
		name string
		file []byte
		msg  string
	}{
		{"Empty", nil, "not audio"},
		{"Text", []byte("hello, this is not a sound file at all"), "not audio"},
		{"PNG", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "not audio"},
		{"Ogg", append([]byte("OggS"), make([]byte, 60)...), "ogg (opus, vorbis)"},
		{"WebM", []byte{0x1a, 0x45, 0xdf, 0xa3, 0, 0, 0, 0}, "webm"},
		{"M4A", append([]byte{0, 0, 0, 0x20}, "ftypM4A "...), "mp4 / m4a"},
		{"WAVNoData", testWAV(8000, 100)[:36], "no data chunk"},
		{"WAVEmptyData", testWAV(8000, 0), "no audio data"},
		{"WAVSlowRate", func() []byte { b := testWAV(8000, 100); binary.LittleEndian.PutUint32(b[28:], 10); return b }(), "byte rate 10"},
		{"WAVFmtCut", testWAV(8000, 100)[:30], "fmt chunk is cut short"},
		{"MP3Broken", brokenMP3, "frames break off"},
		{"MP3XingZero", testMP3(0, false, true), "counts no frames"},
		{"FLACNoTotal", testFLAC(44100, 0), "total sample count"},
		{"FLACNoRate", testFLAC(0, 100), "sample rate is 0"},
		{"FLACCut", testFLAC(44100, 100)[:20], "STREAMINFO"},
		{"ID3Only", id3(50), "not audio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, d, err := audioDuration(tc.file)
			if tollgate.ErrorCode(err) != tollgate.EINVALID || !strings.Contains(tollgate.ErrorMessage(err), tc.msg) {
				t.Errorf("= %v, %v; want EINVALID with %q", d, err, tc.msg)
			}
		})
	}
}

func TestHeldSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{time.Millisecond, 3}, {2500 * time.Millisecond, 5}, {60 * time.Second, 63}, {3600 * time.Second, 3673}} {
		if got := heldSeconds(tc.d); got != tc.want {
			t.Errorf("heldSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// FuzzAudioDuration: any bytes are measured or refused with EINVALID,
// never a panic, a negative duration, or more than the bytes could hold
// at the lowest rate accepted.
func FuzzAudioDuration(f *testing.F) {
	f.Add(testWAV(8000, 100))
	f.Add(testMP3(5, false, false))
	f.Add(testMP3(5, true, true))
	f.Add(append(id3(10), testMP3(3, false, false)...))
	f.Add(testFLAC(44100, 1000))
	f.Add([]byte("OggS"))
	f.Add([]byte{0xff, 0xfb, 0x90, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		format, d, err := audioDuration(b)
		if err != nil {
			if tollgate.ErrorCode(err) != tollgate.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if d <= 0 && format != "mp3" || d < 0 {
			t.Fatalf("%s duration %v", format, d)
		}
		if format == "wav" && d > time.Duration(len(b))*time.Second/minByteRate+time.Second {
			t.Fatalf("wav of %d bytes lasts %v", len(b), d)
		}
	})
}
