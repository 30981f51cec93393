import { ObjectExistsError } from '../domain/errors.js';
import {
  archiveInfoKey,
  parseWalObjectKey,
  walFolder,
  walObjectKey,
  walObjectPrefix,
} from '../domain/physical-layout.js';
import type { StoreRole } from '../domain/store-roles.js';
import type { WalFileName } from '../domain/wal-names.js';
import type { BackupStore } from '../storage/store.js';

/** What archive.json records: which cluster's WAL this archive holds, written by the first push. */
export interface ArchiveInfo {
  readonly version: 1;
  readonly cluster: string;
  readonly systemIdentifier: string;
  readonly major?: number;
  readonly segmentBytes?: number;
  readonly createdAt: string;
}

/** One stored WAL file: its object's key and the SHA-256 of the original bytes its key carries. */
export interface StoredWalFile {
  readonly key: string;
  readonly sha256: string;
  readonly size: number;
}

/** Reads and writes one cluster's part of the physical archive in a store. */
export class WalArchive {
  readonly store: BackupStore;
  readonly cluster: string;

  constructor(store: BackupStore, cluster: string) {
    this.store = store;
    this.cluster = cluster;
  }

  get infoKey(): string {
    return archiveInfoKey(this.store.prefix, this.cluster);
  }

  keyOf(file: WalFileName, sha256: string): string {
    return walObjectKey(this.store.prefix, this.cluster, file, sha256);
  }

  /**
   * Whether the archive is there (its archive.json): one request, where {@link info} makes two to
   * read it as well.
   */
  async exists(): Promise<boolean> {
    return (await this.store.head(this.infoKey)) !== undefined;
  }

  /** The archive's identity, or undefined when nothing was ever pushed. */
  async info(): Promise<ArchiveInfo | undefined> {
    if (!(await this.store.head(this.infoKey))) return undefined;
    return JSON.parse((await this.store.getBytes(this.infoKey)).toString('utf8')) as ArchiveInfo;
  }

  /**
   * The archive's identity, recorded from `proposed` when there is none yet. Two first pushes
   * racing both end up with the one that was written (the store refuses the second).
   */
  async claim(proposed: Omit<ArchiveInfo, 'version' | 'cluster'>): Promise<ArchiveInfo> {
    const existing = await this.info();
    if (existing) return existing;
    const info: ArchiveInfo = { version: 1, cluster: this.cluster, ...proposed };
    try {
      await this.store.putBytes(this.infoKey, `${JSON.stringify(info, null, 2)}\n`, {
        contentType: 'application/json',
      });
      return info;
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error;
      const winner = await this.info();
      if (!winner) throw error;
      return winner;
    }
  }

  /** Every stored copy of one WAL file (normally none or one: different contents are refused). */
  async find(file: WalFileName): Promise<StoredWalFile[]> {
    const found: StoredWalFile[] = [];
    for await (const object of this.store.list(walObjectPrefix(this.store.prefix, this.cluster, file))) {
      const parsed = parseWalObjectKey(object.key);
      if (parsed && parsed.name === file.name) {
        found.push({ key: object.key, sha256: parsed.sha256, size: object.size });
      }
    }
    return found;
  }
}

/**
 * The archive as a reader of a run of segments (the prefetcher) sees it: each WAL folder is
 * listed once for the segments in it, not once per segment (a request each to S3, whose CPU
 * the recovery beside it waits for). A segment that a listing holds is archived, as objects are
 * never overwritten; one it lacks is listed afresh, so "not archived" is only ever the answer of
 * a listing made after the question.
 */
export class ListedWalArchive extends WalArchive {
  /** The last folders listed, newest last: the window of a recovery spans at most two. */
  private readonly folders = new Map<string, ReadonlyMap<string, StoredWalFile[]>>();
  /**
   * The listings under way, by folder: the prefetcher's workers ask for two segments of the same
   * folder at once when a recovery starts (and when it enters the next folder), and the second
   * waits for the first one's listing instead of making its own (a LIST of S3 fewer each time,
   * ~6 ms of this process's CPU and more of the store's).
   */
  private readonly listing = new Map<string, Promise<ReadonlyMap<string, StoredWalFile[]>>>();
  /** When a read of archive.json that found it began, the last time one did. */
  private seenAt: number | undefined;
  private readonly now: () => number;

  /** `now`: the clock that dates reads of archive.json (tests set it). */
  constructor(store: BackupStore, cluster: string, now: () => number = Date.now) {
    super(store, cluster);
    this.now = now;
  }

  /**
   * Whether the archive is there, asked of the store unless a read of archive.json found it
   * less than a second ago. Asked after every listing that lacks a name (lib/wal/store-read.ts),
   * so that "not archived" is never the answer of a store that is not mounted or a wrong prefix:
   * a read a moment before the listing proves that as well as one a moment after it, and at a
   * recovery's start (the identity read, then the first history file's listing) and at its end
   * (the segment past it and the next timeline's history file, looked up each second) it saves
   * a request each time, one the recovery waits for.
   */
  override async exists(): Promise<boolean> {
    if (this.seenAt !== undefined && this.now() - this.seenAt < SEEN_KEPT_MS) return true;
    const askedAt = this.now();
    const there = await super.exists();
    this.seenAt = there ? askedAt : undefined;
    return there;
  }

  override async info(): Promise<ArchiveInfo | undefined> {
    const askedAt = this.now();
    const info = await super.info();
    this.seenAt = info ? askedAt : undefined;
    return info;
  }

  override async find(file: WalFileName): Promise<StoredWalFile[]> {
    if (file.kind !== 'segment') return super.find(file);
    const folder = walFolder(this.store.prefix, this.cluster, file);
    const known = this.folders.get(folder)?.get(file.name);
    if (known) return known;
    // A listing that began before this question may say that it holds the segment, never that
    // it does not: lacking it there, the folder is listed afresh.
    const under = this.listing.get(folder);
    if (under) {
      const found = (await under.catch(() => undefined))?.get(file.name);
      if (found) return found;
    }
    return (await this.listFolder(folder)).get(file.name) ?? [];
  }

  private listFolder(folder: string): Promise<ReadonlyMap<string, StoredWalFile[]>> {
    const listing = (async () => {
      const listed = new Map<string, StoredWalFile[]>();
      for await (const object of this.store.list(`${folder}/`)) {
        const parsed = parseWalObjectKey(object.key);
        if (!parsed) continue;
        const copies = listed.get(parsed.name) ?? [];
        copies.push({ key: object.key, sha256: parsed.sha256, size: object.size });
        listed.set(parsed.name, copies);
      }
      // Older folders go: a recovery of terabytes of WAL passes through thousands.
      this.folders.delete(folder);
      this.folders.set(folder, listed);
      for (const old of this.folders.keys()) if (this.folders.size > 2) this.folders.delete(old);
      return listed;
    })();
    this.listing.set(folder, listing);
    const done = () => {
      if (this.listing.get(folder) === listing) this.listing.delete(folder);
    };
    listing.then(done, done);
    return listing;
  }
}

/** How long a read that found archive.json answers for the archive being there (see ListedWalArchive.exists). */
const SEEN_KEPT_MS = 1_000;

/**
 * The archive as the pusher sees it over a burst: archive.json is read once it is there and then
 * remembered for a minute, not read again for every segment (a HEAD and a GET each: two requests
 * to S3 per segment, a stat and a read of a directory store's file). What it records does not
 * change, as objects are never overwritten, and every segment's own system identifier is still
 * checked against it (push.ts), so a segment of another cluster is refused as before; the minute
 * bounds how long a pusher would go on with an archive an operator removed and another cluster
 * claimed again. Until the archive has an identity, each push looks again.
 */
export class IdentifiedWalArchive extends WalArchive {
  private known: { readonly info: ArchiveInfo; readonly until: number } | undefined;

  override async info(): Promise<ArchiveInfo | undefined> {
    if (this.known && Date.now() < this.known.until) return this.known.info;
    const info = await super.info();
    this.known = info ? { info, until: Date.now() + IDENTITY_KEPT_MS } : undefined;
    return info;
  }
}

/** How long the pusher keeps an archive's identity before it reads archive.json again. */
const IDENTITY_KEPT_MS = 60_000;

/** One store's part of the archive, and the part the store plays. */
export interface RoleArchive {
  readonly role: StoreRole;
  readonly archive: WalArchive;
}
