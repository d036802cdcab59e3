//! Tests for `outbox`.

use super::*;
use tempfile::TempDir;

const MIB: u64 = 1024 * 1024;

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn disk_bytes(dir: &Path) -> u64 {
    seg_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn payload(i: u64) -> Vec<u8> {
    format!("batch-{i:04}-").repeat(8).into_bytes()
}

fn seqs(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
    records.iter().map(|(s, _)| *s).collect()
}

#[test]
fn crc32_matches_reference() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32_update(crc32(b"1234"), b"56789"), 0xCBF4_3926);
}

#[test]
fn append_then_read_in_order() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), 10 * MIB).unwrap();
    assert_eq!(ob.last_seq(), 0);
    for i in 1..=5 {
        assert_eq!(ob.append(&payload(i)).unwrap(), i);
    }
    let got = ob.read_after(0, 100).unwrap();
    let want: Vec<_> = (1..=5).map(|i| (i, payload(i))).collect();
    assert_eq!(got, want);
    assert_eq!(seqs(&ob.read_after(3, 100).unwrap()), vec![4, 5]);
    assert!(ob.read_after(5, 100).unwrap().is_empty());
    assert_eq!(ob.pending(), 5);
    assert_eq!(ob.bytes_on_disk(), disk_bytes(tmp.path()));
    // Empty payloads are valid records too.
    assert_eq!(ob.append(b"").unwrap(), 6);
    assert_eq!(ob.read_after(5, 1).unwrap(), vec![(6, Vec::new())]);
}

#[test]
fn read_after_honours_max() {
    let tmp = TempDir::new().unwrap();
    // Small cap so the records span several segments.
    let mut ob = Outbox::open(tmp.path(), 16 * 1024).unwrap();
    for i in 1..=100 {
        ob.append(&payload(i)).unwrap();
    }
    assert!(seg_files(tmp.path()).len() > 2);
    assert_eq!(seqs(&ob.read_after(0, 3).unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(&ob.read_after(3, 3).unwrap()), vec![4, 5, 6]);
    assert!(ob.read_after(0, 0).unwrap().is_empty());
    let tail = ob.read_after(90, 1000).unwrap();
    assert_eq!(seqs(&tail), (91..=100).collect::<Vec<_>>());
    assert_eq!(tail[0].1, payload(91));
    assert_eq!(ob.read_after(0, 1000).unwrap().len(), 100);
}

#[test]
fn ack_deletes_segments_and_survives_reopen() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), 8192).unwrap(); // 1 KiB segments
    for i in 1..=30 {
        ob.append(&payload(i)).unwrap();
    }
    let before = seg_files(tmp.path()).len();
    assert!(before >= 4, "expected several segments, got {before}");
    ob.ack(20).unwrap();
    assert_eq!(ob.acked_seq(), 20);
    assert_eq!(ob.pending(), 10);
    assert!(seg_files(tmp.path()).len() < before);
    assert_eq!(ob.bytes_on_disk(), disk_bytes(tmp.path()));
    assert_eq!(seqs(&ob.read_after(0, 1).unwrap()), vec![21]);
    ob.ack(5).unwrap(); // backwards: ignored
    assert_eq!(ob.acked_seq(), 20);
    drop(ob);

    let ob = Outbox::open(tmp.path(), 8192).unwrap();
    assert_eq!(ob.acked_seq(), 20);
    assert_eq!(ob.last_seq(), 30);
    assert_eq!(ob.pending(), 10);
    let rest = ob.read_after(0, 100).unwrap();
    assert_eq!(seqs(&rest), (21..=30).collect::<Vec<_>>());
    assert_eq!(rest[9].1, payload(30));
}

#[test]
fn seq_continues_after_reopen_and_full_ack() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    for _ in 0..5 {
        ob.append(b"x").unwrap();
    }
    drop(ob);
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(ob.last_seq(), 5);
    assert_eq!(ob.append(b"y").unwrap(), 6);
    ob.ack(6).unwrap();
    assert_eq!(ob.pending(), 0);
    assert!(ob.read_after(0, 10).unwrap().is_empty());
    drop(ob);

    drop(Outbox::open(tmp.path(), MIB).unwrap()); // deletes the fully acked segment
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert!(
        seg_files(tmp.path()).is_empty(),
        "fully acked segments remain"
    );
    assert_eq!((ob.last_seq(), ob.acked_seq(), ob.pending()), (6, 6, 0));
    assert_eq!(ob.append(b"z").unwrap(), 7);
    drop(ob);
    let ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(ob.read_after(0, 10).unwrap(), vec![(7, b"z".to_vec())]);
}

#[test]
fn empty_newest_segment_remembers_last_seq() {
    // As left by a crash right after a roll that dropped all older segments.
    let tmp = TempDir::new().unwrap();
    fs::write(segment_path(tmp.path(), 10), b"").unwrap();
    for _ in 0..2 {
        let ob = Outbox::open(tmp.path(), MIB).unwrap();
        assert_eq!((ob.last_seq(), ob.pending(), ob.bytes_on_disk()), (9, 0, 0));
    }
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(ob.append(b"ten").unwrap(), 10);
    assert_eq!(seg_files(tmp.path()).len(), 1);
}

#[test]
fn ack_beyond_last_fast_forwards() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    ob.append(b"a").unwrap();
    ob.ack(500).unwrap();
    assert_eq!((ob.acked_seq(), ob.last_seq(), ob.pending()), (500, 500, 0));
    assert_eq!(ob.append(b"b").unwrap(), 501);
    drop(ob);
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(ob.read_after(0, 10).unwrap(), vec![(501, b"b".to_vec())]);
    assert_eq!(ob.append(b"c").unwrap(), 502);
}

#[test]
fn cap_drops_oldest_and_counts() {
    let tmp = TempDir::new().unwrap();
    let cap = 4096; // 512-byte segments
    let mut ob = Outbox::open(tmp.path(), cap).unwrap();
    for i in 1..=100 {
        ob.append(&payload(i)).unwrap();
        assert!(ob.bytes_on_disk() <= cap, "over cap after {i}");
        assert_eq!(ob.bytes_on_disk(), disk_bytes(tmp.path()));
    }
    assert!(ob.dropped() > 0);
    assert_eq!(ob.pending() + ob.dropped(), 100);
    let left = ob.read_after(0, 1000).unwrap();
    assert_eq!(left.len() as u64, ob.pending());
    assert_eq!(left.last().unwrap().0, 100);
    let first = left[0].0;
    assert!(first > 1);
    assert_eq!(seqs(&left), (first..=100).collect::<Vec<_>>());
    drop(ob);
    let ob = Outbox::open(tmp.path(), cap).unwrap();
    assert_eq!((ob.last_seq(), ob.dropped()), (100, 0));
    assert_eq!(ob.read_after(0, 1000).unwrap(), left);
}

#[test]
fn cap_drops_everything_old_for_a_big_record() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), 2000).unwrap();
    for i in 1..=10 {
        ob.append(&payload(i)).unwrap();
    }
    ob.ack(3).unwrap();
    assert_eq!(ob.append(&[7; 1900]).unwrap(), 11);
    assert_eq!(ob.dropped(), 7, "acked records must not count as dropped");
    assert_eq!(ob.read_after(0, 10).unwrap(), vec![(11, vec![7; 1900])]);
    assert!(ob.bytes_on_disk() <= 2000);
    drop(ob);
    let mut ob = Outbox::open(tmp.path(), 2000).unwrap();
    assert_eq!(ob.append(b"next").unwrap(), 12);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    for i in 1..=5 {
        ob.append(&payload(i)).unwrap();
    }
    ob.flush().unwrap();
    drop(ob);
    let [seg] = seg_files(tmp.path()).try_into().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let record = len / 5;
    // Cut the 5th record in the middle of its payload.
    File::options()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), 4 * record);
    assert_eq!((ob.last_seq(), ob.pending()), (4, 4));
    let want: Vec<_> = (1..=4).map(|i| (i, payload(i))).collect();
    assert_eq!(ob.read_after(0, 10).unwrap(), want);
    assert_eq!(ob.append(b"again").unwrap(), 5);
    drop(ob);
    let ob = Outbox::open(tmp.path(), MIB).unwrap();
    let got = ob.read_after(3, 10).unwrap();
    assert_eq!(got, vec![(4, payload(4)), (5, b"again".to_vec())]);
}

#[test]
fn garbage_tail_is_truncated_on_open() {
    let garbage: [&[u8]; 4] = [
        &[0xAB; 37],
        &[0xFF; 16],                        // huge length: must not allocate
        &[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0], // short header
        &[
            4, 0, 0, 0, 1, 2, 3, 4, 4, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c', b'd',
        ], // bad crc
    ];
    for junk in garbage {
        let tmp = TempDir::new().unwrap();
        let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
        for i in 1..=3 {
            ob.append(&payload(i)).unwrap();
        }
        drop(ob);
        let [seg] = seg_files(tmp.path()).try_into().unwrap();
        let good_len = fs::metadata(&seg).unwrap().len();
        File::options()
            .append(true)
            .open(&seg)
            .unwrap()
            .write_all(junk)
            .unwrap();

        let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(ob.last_seq(), 3);
        assert_eq!(ob.append(b"four").unwrap(), 4);
        let got = ob.read_after(2, 10).unwrap();
        assert_eq!(got, vec![(3, payload(3)), (4, b"four".to_vec())]);
    }
}

#[test]
fn corrupt_middle_record_keeps_records_before_it() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), MIB).unwrap();
    for i in 1..=3 {
        ob.append(&payload(i)).unwrap();
    }
    drop(ob);
    let [seg] = seg_files(tmp.path()).try_into().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let record = bytes.len() / 3;
    bytes[record + HEADER as usize + 2] ^= 0x01; // flip a payload bit of record 2
    fs::write(&seg, &bytes).unwrap();
    let ob = Outbox::open(tmp.path(), MIB).unwrap();
    assert_eq!(ob.read_after(0, 10).unwrap(), vec![(1, payload(1))]);
    assert_eq!(ob.bytes_on_disk(), record as u64);
}

#[test]
fn arbitrary_file_content_never_panics() {
    let mut rng = 0x1234_5678_9abc_def0_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..40 {
        let tmp = TempDir::new().unwrap();
        let junk: Vec<u8> = (0..next() % 300).map(|_| next() as u8).collect();
        let first = [0, 1, round, u64::MAX - 1][round as usize % 4];
        fs::write(segment_path(tmp.path(), first), &junk).unwrap();
        fs::write(tmp.path().join(STATE_FILE), &junk[..junk.len().min(12)]).unwrap();
        fs::write(tmp.path().join("seg-1.log"), b"ignored").unwrap();
        let mut ob = Outbox::open(tmp.path(), 4096).unwrap();
        let _ = ob.read_after(0, 100).unwrap();
        let last = ob.last_seq();
        match ob.append(b"ok") {
            Ok(seq) => assert!(seq > last),
            Err(OutboxError::SeqExhausted) => assert!(last >= u64::MAX - 1),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn oversized_payload_refused() {
    let tmp = TempDir::new().unwrap();
    let mut ob = Outbox::open(tmp.path(), 64 * MIB).unwrap();
    let err = ob.append(&vec![0; MAX_PAYLOAD + 1]).unwrap_err();
    assert!(matches!(err, OutboxError::PayloadTooLarge { .. }), "{err}");
    assert_eq!(ob.append(&vec![1; MAX_PAYLOAD]).unwrap(), 1);

    let mut small = Outbox::open(&tmp.path().join("small"), 1000).unwrap();
    let err = small.append(&[0; 1000]).unwrap_err();
    assert!(matches!(err, OutboxError::ExceedsCap { .. }), "{err}");
    assert_eq!((small.last_seq(), small.bytes_on_disk()), (0, 0));
    assert_eq!(small.append(&[0; 984]).unwrap(), 1);
}
