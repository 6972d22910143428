package checkpoint

import (
	"fmt"
	"testing"
	"time"
)

// archive_keep bounds the archive: the oldest go first.
func TestArchiveKeepsTheNewest(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		if _, err := st.Archive(base.Add(time.Duration(i)*time.Minute), 3, testSections(i+1)...); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := archived(ArchivePath(dir))
	want := []string{archiveName(base.Add(2 * time.Minute)), archiveName(base.Add(3 * time.Minute)), archiveName(base.Add(4 * time.Minute))}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("archive holds %v, want %v", names, want)
	}
}
