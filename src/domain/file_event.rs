//! What happened to a file, as the application is told (README, "Events"): one event per
//! committed change of a file's record, derived from the record before and after the change.
//!
//! The change comes from the table's stream, so nothing is told that did not commit, and every
//! committed change is told (at least once: the event's `id` is the stream record's, the same on
//! every delivery, so consumers de-duplicate on it).

use time::OffsetDateTime;

use super::{FileRecord, FileStatus, OwnerId};

/// The `detail-type` of each event, one per kind of change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileEventKind {
    /// A reservation was made (an upload URL issued).
    Reserved,
    /// The upload was accepted and waits for the malware scan.
    Scanning,
    /// The file can be downloaded.
    Available,
    /// The upload was refused (`rejectedFor` says why) and its object deleted.
    Rejected,
    /// The file (or reservation) was deleted.
    Deleted,
    /// An unconfirmed reservation lapsed and DynamoDB's TTL removed it.
    Expired,
}

impl FileEventKind {
    pub const ALL: [Self; 6] = [
        Self::Reserved,
        Self::Scanning,
        Self::Available,
        Self::Rejected,
        Self::Deleted,
        Self::Expired,
    ];

    pub fn detail_type(self) -> &'static str {
        match self {
            Self::Reserved => "File Reserved",
            Self::Scanning => "File Scanning",
            Self::Available => "File Available",
            Self::Rejected => "File Rejected",
            Self::Deleted => "File Deleted",
            Self::Expired => "File Expired",
        }
    }
}

/// One committed change of a file's record: the record before (`None` for a new record) and
/// after (`None` for a removed one).
#[derive(Clone, Debug)]
pub struct FileChange {
    /// The change's own id, the same on every delivery of it.
    pub id: String,
    pub occurred_at: OffsetDateTime,
    pub before: Option<FileRecord>,
    pub after: Option<FileRecord>,
    /// Removed by the table's TTL (an unconfirmed reservation that lapsed), not by a request.
    pub expired: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileEvent {
    pub id: String,
    pub kind: FileEventKind,
    pub occurred_at: OffsetDateTime,
    pub owner: OwnerId,
    pub previous_status: Option<FileStatus>,
    /// The file after the change; for a removal, as it last was.
    pub file: FileRecord,
}

impl FileChange {
    /// The event this change makes, if any: a change that leaves the status as it was (a grant,
    /// a link, the sharing version) tells the application nothing new.
    pub fn event(self) -> Option<FileEvent> {
        let (kind, file, previous_status) = match (self.before, self.after) {
            (None, Some(after)) => (Self::status_kind(after.status)?, after, None),
            (Some(before), Some(after)) if before.status != after.status => {
                (Self::status_kind(after.status)?, after, Some(before.status))
            }
            (Some(before), None) => {
                let kind = match self.expired {
                    true => FileEventKind::Expired,
                    false => FileEventKind::Deleted,
                };
                let previous = before.status;
                (kind, before, Some(previous))
            }
            _ => return None,
        };
        Some(FileEvent {
            id: self.id,
            kind,
            occurred_at: self.occurred_at,
            owner: file.owner.clone(),
            previous_status,
            file,
        })
    }

    fn status_kind(status: FileStatus) -> Option<FileEventKind> {
        Some(match status {
            FileStatus::Pending => FileEventKind::Reserved,
            FileStatus::Scanning => FileEventKind::Scanning,
            FileStatus::Available => FileEventKind::Available,
            FileStatus::Rejected => FileEventKind::Rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: Option<FileStatus>, after: Option<FileStatus>, expired: bool) -> FileChange {
        FileChange {
            id: "change-1".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            before: before.map(FileRecord::example),
            after: after.map(FileRecord::example),
            expired,
        }
    }

    #[test]
    fn every_status_change_is_told_once_with_what_came_before() {
        use FileEventKind as K;
        use FileStatus as S;
        let told = |before, after, expired| {
            change(before, after, expired)
                .event()
                .map(|event| (event.kind, event.previous_status, event.file.status))
        };
        let table = [
            (
                None,
                Some(S::Pending),
                false,
                Some((K::Reserved, None, S::Pending)),
            ),
            (
                Some(S::Pending),
                Some(S::Scanning),
                false,
                Some((K::Scanning, Some(S::Pending), S::Scanning)),
            ),
            (
                Some(S::Scanning),
                Some(S::Available),
                false,
                Some((K::Available, Some(S::Scanning), S::Available)),
            ),
            (
                Some(S::Pending),
                Some(S::Available),
                false,
                Some((K::Available, Some(S::Pending), S::Available)),
            ),
            (
                Some(S::Scanning),
                Some(S::Rejected),
                false,
                Some((K::Rejected, Some(S::Scanning), S::Rejected)),
            ),
            (
                Some(S::Available),
                None,
                false,
                Some((K::Deleted, Some(S::Available), S::Available)),
            ),
            (
                Some(S::Pending),
                None,
                true,
                Some((K::Expired, Some(S::Pending), S::Pending)),
            ),
            // A grant or a link changes the record, not its status: nothing to tell.
            (Some(S::Available), Some(S::Available), false, None),
            (None, None, false, None),
        ];
        for (before, after, expired, expected) in table {
            assert_eq!(
                told(before, after, expired),
                expected,
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn the_event_keeps_the_changes_id_and_owner() {
        let event = change(None, Some(FileStatus::Pending), false)
            .event()
            .unwrap();
        assert_eq!(event.id, "change-1");
        assert_eq!(event.owner.as_str(), "alice");
        let types: Vec<_> = FileEventKind::ALL.map(FileEventKind::detail_type).into();
        assert_eq!(
            types,
            [
                "File Reserved",
                "File Scanning",
                "File Available",
                "File Rejected",
                "File Deleted",
                "File Expired"
            ]
        );
    }
}
