//! The event type names Egnyte sends, and their families.
//!
//! [`EventType`] is a closed enum of the 34 documented names plus [`EventType::Other`], which
//! keeps any other name exactly as received (`storage:add_file` round-trips through
//! [`EventType::parse`] and [`EventType::as_str`]). Parsing never allocates and never fails: an
//! unknown name is an event to accept and deliver, not an error.
//!
//! When Egnyte documents a new name, add one line to the `event_types!` table below; `ALL`, the
//! parser, `as_str` and `family` all follow from it.

use std::fmt;

/// The family an event type belongs to: the part of its name before the colon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `fs:*`: files and folders.
    Fs,
    /// `link:*`: download and upload links.
    Link,
    /// `meta:*`: metadata keys.
    Meta,
    /// `comment:*`: comments.
    Comment,
    /// `workflow:*`: workflows and approval tasks.
    Workflow,
    /// `group:*`: user groups.
    Group,
    /// `permission:*`: folder permissions.
    Permission,
    /// Any other prefix (`storage:*`, `links:*`, …) or a name without a colon.
    Other,
}

impl Family {
    /// The family's prefix as Egnyte spells it (`"fs"`, `"link"`, …; `"other"` for [`Family::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Fs => "fs",
            Family::Link => "link",
            Family::Meta => "meta",
            Family::Comment => "comment",
            Family::Workflow => "workflow",
            Family::Group => "group",
            Family::Permission => "permission",
            Family::Other => "other",
        }
    }

    /// The family whose prefix is exactly `prefix`, or [`Family::Other`].
    fn from_prefix(prefix: &str) -> Family {
        match prefix {
            "fs" => Family::Fs,
            "link" => Family::Link,
            "meta" => Family::Meta,
            "comment" => Family::Comment,
            "workflow" => Family::Workflow,
            "group" => Family::Group,
            "permission" => Family::Permission,
            _ => Family::Other,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bytes of `name` as an array, for compile-time comparison constants.
const fn as_array<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

macro_rules! event_types {
    ($($variant:ident = $name:literal in $family:ident,)*) => {
        /// An Egnyte event type: one of the 34 documented names, or any other name as received.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventType<'buf> {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// A name Egnyte does not document (yet), kept exactly as received.
            Other(&'buf str),
        }

        impl<'buf> EventType<'buf> {
            /// Every documented event type, in the order of Egnyte's specification.
            pub const ALL: [EventType<'static>; 34] = [$(EventType::$variant,)*];

            /// Reads a name; never allocates, never fails (unknown names become [`EventType::Other`]).
            ///
            /// Runs once per event on the hot path, so each candidate is tried as a fixed-size
            /// array: a length check, then one inline compare, no `memcmp` call.
            pub fn parse(name: &'buf str) -> EventType<'buf> {
                let bytes = name.as_bytes();
                $(
                    if let Ok(candidate) = <&[u8; $name.len()]>::try_from(bytes) {
                        if *candidate == const { as_array::<{ $name.len() }>($name) } {
                            return EventType::$variant;
                        }
                    }
                )*
                EventType::Other(name)
            }

            /// The name exactly as Egnyte spells it (for `Other`, as received).
            pub fn as_str(&self) -> &'buf str {
                match *self {
                    $(EventType::$variant => $name,)*
                    EventType::Other(name) => name,
                }
            }

            /// The family of the event type. For an unknown name, the family whose prefix
            /// matches exactly (`fs:future_event` is [`Family::Fs`]), else [`Family::Other`].
            pub fn family(&self) -> Family {
                match *self {
                    $(EventType::$variant => Family::$family,)*
                    EventType::Other(name) => {
                        name.split_once(':').map_or(Family::Other, |(prefix, _)| Family::from_prefix(prefix))
                    }
                }
            }
        }
    };
}

event_types! {
    AddFile = "fs:add_file" in Fs,
    AddFolder = "fs:add_folder" in Fs,
    CopyFile = "fs:copy_file" in Fs,
    CopyFolder = "fs:copy_folder" in Fs,
    MoveFile = "fs:move_file" in Fs,
    MoveFolder = "fs:move_folder" in Fs,
    DeleteFile = "fs:delete_file" in Fs,
    DeleteFolder = "fs:delete_folder" in Fs,
    DeleteFromTrash = "fs:delete_from_trash" in Fs,
    RestoreFromTrash = "fs:restore_from_trash" in Fs,
    LockFile = "fs:lock_file" in Fs,
    UnlockFile = "fs:unlock_file" in Fs,
    FolderProjectActivity = "fs:folder_project_activity" in Fs,
    UploadLink = "fs:upload_link" in Fs,
    CreateDownloadLink = "link:create_download_link" in Link,
    CreateUploadLink = "link:create_upload_link" in Link,
    DeleteDownloadLink = "link:delete_download_link" in Link,
    DeleteUploadLink = "link:delete_upload_link" in Link,
    AddMetadataKey = "meta:add_metadata_key" in Meta,
    DeleteMetadataKey = "meta:delete_metadata_key" in Meta,
    SetComment = "comment:set_comment" in Comment,
    RemoveComment = "comment:remove_comment" in Comment,
    WorkflowCreated = "workflow:created" in Workflow,
    WorkflowCompleted = "workflow:completed" in Workflow,
    ApprovalTaskApproved = "workflow:approvaltask_approved" in Workflow,
    ApprovalTaskRejected = "workflow:approvaltask_rejected" in Workflow,
    GroupCreate = "group:create" in Group,
    GroupDelete = "group:delete" in Group,
    GroupRename = "group:rename" in Group,
    GroupAddMembers = "group:add_members" in Group,
    GroupRemoveMembers = "group:remove_members" in Group,
    GroupAddOwner = "group:add_owner" in Group,
    GroupRemoveOwner = "group:remove_owner" in Group,
    PermissionChange = "permission:permission_change" in Permission,
}

impl fmt::Display for EventType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_name_round_trips_and_is_distinct() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), t);
            assert!(!matches!(t, EventType::Other(_)));
            assert_eq!(t.family().as_str(), t.as_str().split(':').next().unwrap());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 34);
    }

    #[test]
    fn unknown_names_are_kept_as_received() {
        for (name, family) in [
            ("storage:add_file", Family::Other),
            ("links:create_link", Family::Other),
            ("fs:some_future_event", Family::Fs),
            ("group:", Family::Group),
            ("nocolon", Family::Other),
            ("", Family::Other),
            ("FS:ADD_FILE", Family::Other),
        ] {
            let t = EventType::parse(name);
            assert_eq!(t, EventType::Other(name));
            assert_eq!(t.as_str(), name);
            assert_eq!(t.to_string(), name);
            assert_eq!(t.family(), family, "{name}");
        }
    }

    #[test]
    fn families_cover_the_documented_counts() {
        let count = |f| EventType::ALL.iter().filter(|t| t.family() == f).count();
        assert_eq!(count(Family::Fs), 14);
        assert_eq!(count(Family::Link), 4);
        assert_eq!(count(Family::Meta), 2);
        assert_eq!(count(Family::Comment), 2);
        assert_eq!(count(Family::Workflow), 4);
        assert_eq!(count(Family::Group), 7);
        assert_eq!(count(Family::Permission), 1);
    }
}
