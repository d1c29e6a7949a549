//! The event generator: Egnyte-shaped batches of realistic events, every one valid by the
//! receiver's envelope rules.
//!
//! What a batch looks like: a JSON array of one domain's events (one webhook call carries one
//! registration's events), each `{"eventId","domain","timestamp","actionSource","eventType",
//! "webhookId"?,"data"}` with `data` shaped per family as in `tests/fixtures/generate.py`
//! (paths, group and entry ids, link fields, metadata keys,
//! comments, workflows, group members, permissions). Types are drawn from [`EventType::ALL`]
//! with weights that make file additions, moves and deletes the bulk, as in a real domain, and
//! a chosen share gets a plausible future name ([`UNKNOWN_TYPES`]), which the receiver must
//! accept and deliver like any other. Timestamps are milliseconds, a few seconds before the send.
//!
//! Event ids are UUID-shaped and unique per run: `NNNNNNNN-CCCC-4000-8000-SSSSSSSSSSSS`, the run
//! nonce (32 bits, hex), the connection (16 bits) and that connection's event sequence number
//! (48 bits). [`EventKey::parse`] reads them back, which is how `--verify-jsonl` keeps one byte
//! per event instead of a set of strings. `--seed` fixes everything drawn at random (types,
//! sizes, paths, duplicates); the nonce still changes per run, so two runs against one receiver
//! never collide in its deduplication.
//!
//! Invariant: every generated event passes `egnyte_receiver::Parser` (tested below over
//! thousands of batches), and every string goes through [`push_json_string`].

use std::fmt::Write as _;

use egnyte_receiver::json::write_json_string;
use egnyte_receiver::time::rfc3339_ms;
use egnyte_receiver::EventType;

/// Names a receiver has never heard of, as Egnyte may start sending them (its specification
/// warns of `storage:*` and `links:*`; new `fs:` names appear with new features).
pub(super) const UNKNOWN_TYPES: [&str; 6] = [
    "fs:some_future_event",
    "storage:add_file",
    "links:create_link",
    "fs:file_preview",
    "workflow:task_reassigned",
    "group:archive",
];

/// Largest sequence number an event id can carry (48 bits of hex); a connection that would pass
/// it stops issuing batches (at 10^6 events/s that is 8 years).
pub(super) const MAX_SEQUENCE: u64 = (1 << 48) - 1;

const FILE_PATHS: [&str; 12] = [
    "/Shared/Projects/2026/Q3 Plans/report.docx",
    "/Shared/Projects/2026/Q3 Plans/budget.xlsx",
    "/Shared/Finance/Invoices/2025/INV-00421.pdf",
    "/Shared/Marketing/Brand/logo-final-v3.png",
    "/Shared/Engineering/Specs/API v2/design.md",
    "/Shared/HR/Onboarding/Handbook 2026.pdf",
    "/Shared/Legal/Contracts/NDA - Globex.docx",
    "/Private/jdoe/Drafts/notes.txt",
    "/Shared/Équipe Paris/Résumé candidats.docx",
    "/Shared/東京オフィス/議事録 2026-07.txt",
    "/Shared/Sales/Pipeline/FY26 forecast (draft).xlsx",
    "/Shared/Projects/2026/Harbor Bridge/Drawings/S-101 rev B.dwg",
];
const FOLDER_PATHS: [&str; 9] = [
    "/Shared/Projects/2026/Q3 Plans",
    "/Shared/Finance/Invoices/2025",
    "/Shared/Marketing/Campaigns/Spring Launch",
    "/Shared/Engineering/Specs/API v2",
    "/Shared/HR/Onboarding",
    "/Shared/Legal/Contracts/Archive",
    "/Private/asmith/Scans",
    "/Shared/Projects/2026/Harbor Bridge",
    "/Shared/Équipe Paris/Présentations",
];
const SUBFOLDERS: [&str; 5] = ["Drafts", "Final", "Scans 2026", "Review", "Übersetzungen"];
const ARCHIVE_FOLDERS: [&str; 4] =
    ["/Shared/Archive/2025", "/Shared/Projects/Archive", "/Private/jdoe/Old", "/Shared/Finance/Closed"];
/// (id, userName, fullName)
const USERS: [(u64, &str, &str); 8] = [
    (1001, "jdoe", "John Doe"),
    (1002, "asmith", "Alice Smith"),
    (1003, "bwong", "Bella Wong"),
    (1004, "cmartin", "Chloé Martin"),
    (1005, "dpatel", "Dev Patel"),
    (1006, "ekowalski", "Ewa Kowalski"),
    (1007, "ftanaka", "Fumiko Tanaka"),
    (1008, "gromero", "Gabriel Romero"),
];
const GROUPS: [&str; 6] =
    ["Finance Team", "Engineering", "Marketing", "Legal Reviewers", "Project Harbor Bridge", "HR"];
const PRIVILEGES: [&str; 5] = ["None", "Viewer", "Editor", "Full", "Owner"];
const META_KEYS: [(&str, &str); 5] = [
    ("ProjectInfo", "ClientName"),
    ("ProjectInfo", "ProjectNumber"),
    ("Retention", "ExpiresOn"),
    ("DocumentControl", "Revision"),
    ("Finance", "CostCenter"),
];
const COMMENTS: [&str; 5] = [
    "Looks good to me, approved for release.",
    "Can we double-check the totals on page 3?",
    "Updated per legal's feedback.",
    "@asmith please review the new section before Friday.",
    "Numbers reconciled with Q2 actuals ✔",
];
const PROJECT_NAMES: [&str; 4] =
    ["Harbor Bridge Retrofit", "Q3 Planning", "Website Relaunch", "Office Move 2026"];
const PROJECT_STATUSES: [&str; 4] = ["IN_PROGRESS", "PENDING", "ON_HOLD", "DONE"];
const WORKFLOW_NAMES: [&str; 4] =
    ["Contract approval", "Invoice sign-off", "Design review", "Policy update approval"];
const STEP_NAMES: [&str; 4] = ["Manager approval", "Legal review", "Finance sign-off", "Final approval"];
const ACTION_SOURCES: [&str; 8] =
    ["WebUI", "SyncEngine", "PublicAPI", "MobileApp", "DesktopApp", "WebUI", "SyncEngine", "WebEdit"];
/// One event in this many has no `webhookId` (the field is optional in Egnyte's envelope).
const NO_WEBHOOK_ID_ONE_IN: u64 = 5;
/// Events happened up to this long before their batch is sent.
const MAX_EVENT_AGE_MS: u64 = 5_000;

/// How often a documented type is drawn, relative to the others: a real domain is mostly files
/// being added, moved and deleted; every type keeps a weight of at least 1 so each one shows up.
fn weight(event_type: EventType<'_>) -> u32 {
    match event_type {
        EventType::AddFile => 20,
        EventType::DeleteFile => 6,
        EventType::MoveFile => 5,
        EventType::AddFolder => 4,
        EventType::CopyFile => 3,
        EventType::MoveFolder
        | EventType::DeleteFolder
        | EventType::DeleteFromTrash
        | EventType::LockFile
        | EventType::UnlockFile
        | EventType::CreateDownloadLink
        | EventType::AddMetadataKey
        | EventType::SetComment
        | EventType::PermissionChange => 2,
        _ => 1,
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to pick realistic values.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence follows from `seed`.
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is irrelevant at these sizes).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub(super) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A UUID-shaped random id (version 4 layout).
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A domain events are generated for, with its webhook registration's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Domain {
    /// As sent in `domain` (`acme` or `acme.egnyte.com`).
    pub name: String,
    webhook_id: String,
}

impl Domain {
    /// The domain `name`; its webhook id is derived from the name, so it is stable across runs.
    pub(super) fn new(name: &str) -> Domain {
        let seed = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Domain { name: name.to_owned(), webhook_id: Rng::new(seed).uuid() }
    }

    /// The company part (`acme` of `acme.egnyte.com`), for e-mail addresses and link URLs.
    fn company(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }
}

/// An event id of this simulator, read back (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EventKey {
    /// The run's nonce.
    pub nonce: u32,
    /// The connection that generated it.
    pub connection: u16,
    /// Its sequence number on that connection.
    pub sequence: u64,
}

impl EventKey {
    /// Writes the id.
    pub(super) fn write(self, out: &mut String) {
        let _ = write!(out, "{:08x}-{:04x}-4000-8000-{:012x}", self.nonce, self.connection, self.sequence);
    }

    /// Reads an id written by [`EventKey::write`]; `None` for any other string.
    pub(super) fn parse(id: &str) -> Option<EventKey> {
        let bytes = id.as_bytes();
        if bytes.len() != 36 || &id[13..24] != "-4000-8000-" || bytes[8] != b'-' {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        Some(EventKey {
            nonce: hex(&id[..8])? as u32,
            connection: hex(&id[9..13])? as u16,
            sequence: hex(&id[24..])?,
        })
    }
}

/// Batch sizes: every batch has between `min` and `max` events (inclusive), uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchSize {
    /// Fewest events in a batch (≥ 1).
    pub min: u32,
    /// Most events in a batch (≥ `min`).
    pub max: u32,
}

/// One generated request body and what the run must remember about it.
#[derive(Debug, Clone)]
pub(super) struct Batch {
    /// The JSON array, as sent (and re-sent verbatim as a duplicate).
    pub body: Vec<u8>,
    /// Index of its domain in the run's domain list.
    pub domain: u8,
    /// Sequence number of its first event; the others follow without gaps.
    pub first_sequence: u64,
    /// Events in it.
    pub events: u32,
    /// Events in it with an undocumented type.
    pub unknown_types: u32,
}

/// One connection's generator: its own random stream and sequence numbers.
#[derive(Debug)]
pub(super) struct Generator {
    rng: Rng,
    nonce: u32,
    connection: u16,
    next_sequence: u64,
    domains: Vec<Domain>,
    unknown_share: f64,
    sizes: BatchSize,
    /// Cumulative weights over [`EventType::ALL`].
    cumulative: [u32; 34],
}

impl Generator {
    /// A generator for connection `connection` of run `nonce`.
    pub(super) fn new(
        seed: u64,
        nonce: u32,
        connection: u16,
        domains: Vec<Domain>,
        unknown_share: f64,
        sizes: BatchSize,
    ) -> Generator {
        let mut cumulative = [0; 34];
        let mut sum = 0;
        for (slot, event_type) in cumulative.iter_mut().zip(EventType::ALL) {
            sum += weight(event_type);
            *slot = sum;
        }
        // Each connection its own stream: the seed mixed with the connection number.
        let rng = Rng::new(seed ^ u64::from(connection).wrapping_mul(0xd6e8_feb8_6659_fd93));
        Generator { rng, nonce, connection, next_sequence: 0, domains, unknown_share, sizes, cumulative }
    }

    /// The random stream, for the caller's own draws (duplicates, which batch to re-send).
    pub(super) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Sequence numbers used so far on this connection.
    pub(super) fn sequences_used(&self) -> u64 {
        self.next_sequence
    }

    /// The next batch, `now_ms` being the send time; `None` once the sequence space is used up.
    pub(super) fn batch(&mut self, now_ms: u64) -> Option<Batch> {
        let span = u64::from(self.sizes.max - self.sizes.min) + 1;
        let events = self.sizes.min + self.rng.below(span) as u32;
        if self.next_sequence + u64::from(events) > MAX_SEQUENCE {
            return None;
        }
        let domain_index = self.rng.below(self.domains.len() as u64) as usize;
        let first_sequence = self.next_sequence;
        let mut out = String::with_capacity(400 * events as usize);
        let mut unknown_types = 0;
        out.push('[');
        for i in 0..events {
            if i > 0 {
                out.push(',');
            }
            let key =
                EventKey { nonce: self.nonce, connection: self.connection, sequence: self.next_sequence };
            self.next_sequence += 1;
            let timestamp = now_ms.saturating_sub(self.rng.below(MAX_EVENT_AGE_MS));
            let event_type = if self.rng.chance(self.unknown_share) {
                unknown_types += 1;
                self.rng.pick(&UNKNOWN_TYPES)
            } else {
                self.documented_type().as_str()
            };
            let domain = &self.domains[domain_index];
            write_event(&mut out, &mut self.rng, domain, key, timestamp, event_type);
        }
        out.push(']');
        Some(Batch {
            body: out.into_bytes(),
            domain: domain_index as u8,
            first_sequence,
            events,
            unknown_types,
        })
    }

    fn documented_type(&mut self) -> EventType<'static> {
        let total = self.cumulative[33];
        let draw = self.rng.below(u64::from(total)) as u32;
        let index = self.cumulative.partition_point(|&c| c <= draw);
        EventType::ALL[index]
    }
}

/// Appends one event envelope.
fn write_event(
    out: &mut String,
    rng: &mut Rng,
    domain: &Domain,
    key: EventKey,
    timestamp: u64,
    event_type: &str,
) {
    out.push_str("{\"eventId\":\"");
    key.write(out);
    out.push_str("\",\"domain\":");
    push_json_string(out, &domain.name);
    let _ = write!(out, ",\"timestamp\":{timestamp},\"actionSource\":");
    push_json_string(out, rng.pick(&ACTION_SOURCES));
    out.push_str(",\"eventType\":");
    push_json_string(out, event_type);
    if rng.below(NO_WEBHOOK_ID_ONE_IN) != 0 {
        out.push_str(",\"webhookId\":");
        push_json_string(out, &domain.webhook_id);
    }
    out.push_str(",\"data\":");
    let mut data = Object::open(out);
    write_data(&mut data, rng, domain, event_type, timestamp);
    data.close();
    out.push('}');
}

/// The `data` object of one event, by type (unknown types get a plain file-shaped payload).
fn write_data(d: &mut Object<'_>, rng: &mut Rng, domain: &Domain, event_type: &str, timestamp: u64) {
    let file = rng.pick(&FILE_PATHS);
    let folder = rng.pick(&FOLDER_PATHS);
    let group_id = rng.uuid();
    let (family, name) = event_type.split_once(':').unwrap_or(("", event_type));
    match event_type {
        "fs:add_file" => {
            d.str("targetPath", file).str("targetGroupId", &group_id).str("targetEntryId", &rng.uuid());
        }
        "fs:add_folder" => {
            let path = format!("{folder}/{}", rng.pick(&SUBFOLDERS));
            d.str("targetPath", &path).str("targetFolderId", &rng.uuid());
        }
        "fs:copy_file" | "fs:move_file" => {
            let target = format!("{}/{}", rng.pick(&ARCHIVE_FOLDERS), leaf(file));
            // A copy is a new file (a new group id); a move keeps it.
            let target_group = if name == "copy_file" { rng.uuid() } else { group_id.clone() };
            d.str("sourcePath", file).str("targetPath", &target).str("sourceGroupId", &group_id);
            d.str("targetGroupId", &target_group);
        }
        "fs:copy_folder" | "fs:move_folder" => {
            let target = format!("{}/{}", rng.pick(&ARCHIVE_FOLDERS), leaf(folder));
            let folder_id = rng.uuid();
            let target_id = if name == "copy_folder" { rng.uuid() } else { folder_id.clone() };
            d.str("sourcePath", folder).str("targetPath", &target).str("sourceFolderId", &folder_id);
            d.str("targetFolderId", &target_id);
        }
        "fs:delete_file" | "fs:restore_from_trash" => {
            d.str("targetPath", file).str("targetGroupId", &group_id);
        }
        "fs:delete_folder" => {
            d.str("targetPath", folder).str("targetFolderId", &rng.uuid());
        }
        "fs:delete_from_trash" => {
            d.str("sourcePath", file).str("targetGroupId", &group_id);
        }
        "fs:lock_file" | "fs:unlock_file" => {
            let checksum = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64(),
                rng.next_u64()
            );
            d.str("targetPath", file).str("targetGroupId", &group_id).str("targetFileChecksum", &checksum);
        }
        "fs:folder_project_activity" => project_data(d, rng),
        "fs:upload_link" => {
            d.str("sourcePath", folder).str("linkId", &link_id(rng));
        }
        _ if family == "link" => link_data(d, rng, domain, name, file, folder),
        _ if family == "meta" => {
            let (namespace, key) = rng.pick(&META_KEYS);
            d.str("targetPath", file)
                .str("targetGroupId", &group_id)
                .str("namespace", namespace)
                .str("key", key);
            d.str("action", if name.starts_with("add") { "add" } else { "delete" });
        }
        _ if family == "comment" => {
            d.str("targetPath", file).str("targetGroupId", &group_id).str("commentId", &rng.uuid());
            d.str("comment", rng.pick(&COMMENTS));
        }
        _ if family == "workflow" && EventType::parse(event_type) != EventType::Other(event_type) => {
            workflow_data(d, rng, domain, name, timestamp, file, &group_id)
        }
        _ if family == "group" && EventType::parse(event_type) != EventType::Other(event_type) => {
            group_data(d, rng, domain, name)
        }
        "permission:permission_change" => permission_data(d, rng, folder),
        // An undocumented type: what a new file event would most likely carry.
        _ => {
            d.str("sourcePath", file).str("targetPath", file).str("targetGroupId", &group_id);
        }
    }
}

fn project_data(d: &mut Object<'_>, rng: &mut Rng) {
    let name = rng.pick(&PROJECT_NAMES);
    d.str("projectId", &rng.uuid()).str("projectRootFolderId", &rng.uuid()).str("name", name);
    // name, location and status are optional: leave `location` out of a third of them.
    if rng.below(3) != 0 {
        d.str("location", &format!("/Shared/Projects/2026/{name}"));
    }
    d.str("status", rng.pick(&PROJECT_STATUSES));
}

fn link_data(d: &mut Object<'_>, rng: &mut Rng, domain: &Domain, name: &str, file: &str, folder: &str) {
    let upload = name.contains("upload");
    let link_type = if upload || rng.below(3) == 0 { "folder" } else { "file" };
    let id = link_id(rng);
    let url = format!("https://{}.egnyte.com/{}/{id}", domain.company(), if upload { "ul" } else { "dl" });
    d.str("sourcePath", if link_type == "folder" { folder } else { file });
    d.str("linkId", &id).str("linkType", link_type).str("linkURL", &url);
}

fn permission_data(d: &mut Object<'_>, rng: &mut Rng, folder: &str) {
    let assigner = rng.pick(&USERS);
    let (assignee, assignee_id, group) = if rng.below(2) == 0 {
        let user = rng.pick(&USERS);
        (user.1, user.0, None)
    } else {
        let index = rng.below(GROUPS.len() as u64);
        (GROUPS[index as usize], 500 + index, Some(GROUPS[index as usize]))
    };
    let i = rng.below(PRIVILEGES.len() as u64 - 1) as usize;
    let (mut old, mut new) = (PRIVILEGES[i], PRIVILEGES[i + 1]);
    if rng.below(2) == 0 {
        std::mem::swap(&mut old, &mut new);
    }
    d.str("assignee", assignee).num("assigneeId", assignee_id).str("assigner", assigner.1);
    d.num("assignerId", assigner.0)
        .str("folderPath", folder)
        .str("oldPrivilege", old)
        .str("newPrivilege", new);
    match group {
        Some(group) => d.str("groupName", group),
        None => d.raw("groupName", "null"),
    };
}

fn workflow_data(
    d: &mut Object<'_>,
    rng: &mut Rng,
    domain: &Domain,
    name: &str,
    timestamp: u64,
    file: &str,
    group_id: &str,
) {
    let workflow_name = rng.pick(&WORKFLOW_NAMES);
    let status = match name {
        "created" => "IN_PROGRESS",
        "completed" => "COMPLETED",
        "approvaltask_approved" => "APPROVED",
        _ => "REJECTED",
    };
    let (workflow_id, template_id, entry_id) = (rng.uuid(), rng.uuid(), rng.uuid());
    let display_id = 1000 + rng.below(9000);
    d.object("workflow", |w| {
        w.str("id", &workflow_id)
            .str("name", workflow_name)
            .num("displayId", display_id)
            .str("type", "APPROVAL");
        w.str("templateId", &template_id).str("actionStatus", status);
    });
    d.object("firstEntity", |e| {
        e.str("type", "FILE").str("filePath", file).str("entryID", &entry_id).str("groupID", group_id);
    });
    let first_step = rng.below(STEP_NAMES.len() as u64) as usize;
    let steps = [STEP_NAMES[first_step], STEP_NAMES[(first_step + 1) % STEP_NAMES.len()]];
    match name {
        "created" => {
            let definition = workflow_definition(rng, workflow_name, &steps, file);
            d.str("definitionJson", &definition);
        }
        "completed" => {
            d.str("completionStatusCode", rng.pick(&["APPROVED", "APPROVED", "REJECTED"]));
            d.num("totalNumberOfSteps", steps.len() as u64).str("completionDate", &rfc3339_ms(timestamp));
        }
        _ => {
            let step_id = rng.uuid();
            let assignee = rng.pick(&USERS);
            let email = format!("{}@{}.com", assignee.1, domain.company());
            d.object("step", |s| {
                s.str("id", &step_id).str("name", steps[0]).str("type", "APPROVAL");
            });
            d.object("assignee", |a| {
                a.num("id", assignee.0)
                    .str("displayName", assignee.2)
                    .str("username", assignee.1)
                    .str("email", &email);
            });
            let age_days = 1 + rng.below(5);
            d.str("creationDate", &rfc3339_ms(timestamp.saturating_sub(age_days * 86_400_000)));
        }
    }
}

/// The workflow's definition as Egnyte sends it: a JSON document inside a JSON string.
fn workflow_definition(rng: &mut Rng, workflow_name: &str, steps: &[&str; 2], file: &str) -> String {
    let mut text = String::new();
    let mut definition = Object::open(&mut text);
    definition.str("name", workflow_name).str("type", "APPROVAL");
    definition.array("steps", |out| {
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let approver = rng.pick(&USERS);
            let step_id = rng.uuid();
            let mut s = Object::open(out);
            s.str("id", &step_id).str("name", step).str("type", "APPROVAL");
            s.array("assignees", |out| {
                let mut a = Object::open(out);
                a.str("type", "USER").num("id", approver.0).str("username", approver.1);
                a.close();
            });
            s.num("dueInDays", 3 + i as u64);
            s.close();
        }
    });
    definition.object("settings", |s| {
        s.raw("notifyOnCompletion", "true");
        s.str("message", &format!("Please review \"{}\" before the deadline", leaf(file)));
    });
    definition.close();
    text
}

fn group_data(d: &mut Object<'_>, rng: &mut Rng, domain: &Domain, name: &str) {
    let actor = rng.pick(&USERS);
    let owner = rng.pick(&USERS);
    let base = rng.pick(&GROUPS);
    let group_name = if name == "rename" { format!("{base} (2026)") } else { base.to_owned() };
    let group_id = Domain::new(&format!("{base}\u{1f}{}", domain.name)).webhook_id;
    let count = match name {
        "create" => 3,
        "delete" => 0,
        "rename" | "add_members" => 2,
        _ => 1,
    };
    let start = rng.below(USERS.len() as u64) as usize;
    let email = format!("{}@{}.com", actor.1, domain.company());
    d.object("user", |u| {
        u.num("id", actor.0).str("fullName", actor.2).str("userName", actor.1).str("email", &email);
    });
    d.str("owner", owner.1).str("groupName", &group_name).str("groupId", &group_id);
    d.array("members", |out| {
        for i in 0..count {
            if i > 0 {
                out.push(',');
            }
            let member = if name.ends_with("_owner") { owner } else { USERS[(start + i) % USERS.len()] };
            let mut m = Object::open(out);
            m.num("id", member.0).str("userName", member.1);
            m.close();
        }
    });
    d.str("action", name);
}

/// The last component of a path.
fn leaf(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A 10-character base-62 link id, as Egnyte's share links have.
fn link_id(rng: &mut Rng) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..10).map(|_| B62[rng.below(62) as usize] as char).collect()
}

/// Appends `value` as a JSON string (the crate's one string writer).
pub(super) fn push_json_string(out: &mut String, value: &str) {
    let _ = write_json_string(out, value);
}

/// A JSON object being written: `{`, then `"key":value` pairs with commas between, then `}`.
struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut String) -> Object<'a> {
        out.push('{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_json_string(self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_json_string(self.out, value);
        self
    }

    fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// A value already spelled as JSON (`true`, `null`).
    fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    fn object(&mut self, key: &str, fill: impl FnOnce(&mut Object<'_>)) -> &mut Self {
        self.key(key);
        let mut inner = Object::open(self.out);
        fill(&mut inner);
        inner.close();
        self
    }

    /// An array whose elements `fill` writes (with their commas).
    fn array(&mut self, key: &str, fill: impl FnOnce(&mut String)) -> &mut Self {
        self.key(key);
        self.out.push('[');
        fill(self.out);
        self.out.push(']');
        self
    }

    fn close(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egnyte_receiver::{Element, Parser};
    use std::collections::HashSet;

    fn generator(unknown_share: f64, sizes: BatchSize) -> Generator {
        let domains = vec![Domain::new("acme"), Domain::new("globex.egnyte.com")];
        Generator::new(7, 0xdead_beef, 3, domains, unknown_share, sizes)
    }

    #[test]
    fn every_event_is_valid_every_type_appears_and_the_unknown_share_holds() {
        let mut generator = generator(0.02, BatchSize { min: 1, max: 20 });
        let mut parser = Parser::default();
        let mut types = HashSet::new();
        let mut ids = HashSet::new();
        let (mut events, mut unknown) = (0u64, 0u64);
        for _ in 0..2000 {
            let batch = generator.batch(1_732_780_800_123).unwrap();
            assert!((1..=20).contains(&batch.events));
            let parsed = parser
                .parse(&batch.body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&batch.body)));
            let mut count = 0;
            for (i, element) in parsed.elements().enumerate() {
                let Element::Valid(event) = element else {
                    panic!("invalid element: {element:?}\n{}", String::from_utf8_lossy(&batch.body))
                };
                let key = EventKey::parse(event.event_id()).expect("our id layout");
                assert_eq!(
                    (key.nonce, key.connection, key.sequence),
                    (0xdead_beef, 3, batch.first_sequence + i as u64)
                );
                assert!(ids.insert(event.event_id().to_owned()), "ids are unique");
                assert_eq!(event.domain(), ["acme", "globex.egnyte.com"][batch.domain as usize]);
                if matches!(event.event_type(), EventType::Other(_)) {
                    unknown += 1;
                }
                types.insert(event.event_type().as_str().to_owned());
                count += 1;
            }
            assert_eq!(count, batch.events);
            events += u64::from(count);
        }
        for event_type in EventType::ALL {
            assert!(types.contains(event_type.as_str()), "{event_type} never generated");
        }
        let share = unknown as f64 / events as f64;
        assert!((0.01..0.03).contains(&share), "unknown share {share}");
        assert_eq!(generator.sequences_used(), events);
    }

    #[test]
    fn the_data_of_each_family_reads_as_expected() {
        let mut generator = generator(0.0, BatchSize { min: 50, max: 50 });
        let mut parser = Parser::default();
        let mut with_path = 0;
        for _ in 0..20 {
            let batch = generator.batch(1_732_780_800_123).unwrap();
            for element in parser.parse(&batch.body).unwrap().elements() {
                let Element::Valid(event) = element else { panic!() };
                if event.primary_path().is_some() {
                    with_path += 1;
                }
            }
        }
        // Groups and project activity have no path; everything else has one.
        assert!(with_path > 800, "{with_path} of 1000 events have a path");
    }

    #[test]
    fn the_seed_fixes_the_content() {
        let one = generator(0.1, BatchSize { min: 1, max: 10 }).batch(5).unwrap().body;
        let two = generator(0.1, BatchSize { min: 1, max: 10 }).batch(5).unwrap().body;
        assert_eq!(one, two);
    }

    #[test]
    fn event_keys_round_trip_and_reject_other_ids() {
        let key = EventKey { nonce: 0x0123_abcd, connection: 0xffff, sequence: MAX_SEQUENCE };
        let mut id = String::new();
        key.write(&mut id);
        assert_eq!(EventKey::parse(&id), Some(key));
        for other in
            ["", "e1", "5da697d9-f34e-55ce-a68f-3eece8dc4086", "0123ABCD-ffff-4000-8000-000000000001"]
        {
            assert_eq!(EventKey::parse(other), None, "{other}");
        }
    }

    #[test]
    fn dates_and_strings() {
        assert_eq!(rfc3339_ms(1_732_780_800_123), "2024-11-28T08:00:00.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, r#""a\"b\\c\n\u0001é""#);
    }
}
